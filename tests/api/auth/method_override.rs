//! Method-override headers: frameworks behind Bitbucket may run a request as the method
//! `X-HTTP-Method-Override`, `X-HTTP-Method` or `X-Method-Override` names, so for a read-only
//! token such a header naming a write makes the request a write (row 6).

use tokengate::token::Scope;

use super::{AUTH_LOGGER, BEARER_SCOPE, assert_line, bearer, says};
use crate::support::app::{Backend, Options, REST, TokenOpts, spawn_app};
use crate::support::both_backends;

both_backends!(row_6_a_method_override_header_naming_a_write_is_a_write);

/// Frameworks behind Bitbucket may run a request as the method a method-override header names,
/// so a read-only token's GET that names another method is a write.
async fn row_6_a_method_override_header_naming_a_write_is_a_write(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let (_, read_only) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let (_, read_write) = app
        .create_token("bob", Scope::ReadWrite, TokenOpts::default())
        .await;
    let writes = [
        ("X-HTTP-Method-Override", "DELETE", "DELETE"),
        ("x-http-method", "PUT", "PUT"),
        ("X-Method-Override", " patch ", "patch"),
        ("X-HTTP-Method-Override", "GET, DELETE", "GET, DELETE"),
    ];
    for (name, value, shown) in writes {
        for method in ["GET", "HEAD", "OPTIONS"] {
            let extra = [(name, value)];
            let reply = app
                .request(method, REST, Some(&bearer(&read_only)), &extra)
                .await;
            assert_eq!(reply.status, 403, "{method} with {name}: {value}");
            assert!(reply.seen.is_none(), "{method} with {name}: {value}");
            if method == "GET" {
                reply.assert_refused(403);
                assert_eq!(reply.header("www-authenticate"), Some(BEARER_SCOPE));
                assert_line(
                    &app,
                    &reply,
                    AUTH_LOGGER,
                    &says::scope_denied("alice", shown, REST),
                )
                .await;
            }
        }
        // A read/write token may ask for any method; the header goes on to Bitbucket.
        let reply = app
            .request("GET", REST, Some(&bearer(&read_write)), &[(name, value)])
            .await;
        reply.assert_forwarded_as("bob");
        let seen = reply.seen.as_ref().expect("forwarded");
        assert_eq!(seen.header(name).as_deref(), Some(value.trim()));
    }
    for (name, value) in [
        ("X-HTTP-Method-Override", "GET"),
        ("X-HTTP-Method", "head"),
        ("X-Method-Override", "OPTIONS"),
    ] {
        app.request("GET", REST, Some(&bearer(&read_only)), &[(name, value)])
            .await
            .assert_forwarded_as("alice");
    }
    app.finish().await;
}
