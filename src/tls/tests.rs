//! Loading and reloading a pair, on files made with rcgen.

use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, SerialNumber, date_time_ymd};

use super::{Listener, PairError, ServerCert, Trigger, provider};
use crate::config::{ConfigError, TlsFiles};

/// A self-signed certificate for localhost with serial `serial`, valid until `year`, and its
/// key, both PEM.
fn pair(serial: u8, year: i32) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.serial_number = Some(SerialNumber::from(vec![0x22, serial]));
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(year, 1, 1);
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

fn write(dir: &Path, (cert, key): &(String, String)) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    files
}

#[test]
fn a_matching_pair_loads_with_its_serial_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let files = write(dir.path(), &pair(1, 2099));
    let cert = ServerCert::load(Listener::Proxy, &files, provider()).unwrap();
    let served = cert.served();
    assert_eq!(served.serial, "22:01");
    assert_eq!(served.not_after.to_rfc3339(), "2099-01-01T00:00:00+00:00");
}

#[test]
fn a_key_of_another_certificate_is_a_mismatch_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = pair(1, 2099);
    let (_, other_key) = pair(2, 2099);
    let files = write(dir.path(), &(cert, other_key));
    let e = ServerCert::load(Listener::Admin, &files, provider()).unwrap_err();
    assert!(matches!(e, PairError::Mismatch { .. }), "{e}");
    match e.config_error(Listener::Admin) {
        ConfigError::Value { key, reason, .. } => {
            assert_eq!(key, "admin.tls.key");
            assert!(reason.contains("admin.tls.cert"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_reload_serves_a_new_pair_and_keeps_the_old_one_for_a_bad_or_expired_one() {
    let dir = tempfile::tempdir().unwrap();
    let files = write(dir.path(), &pair(1, 2099));
    let cert = Arc::new(ServerCert::load(Listener::Proxy, &files, provider()).unwrap());
    let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    cert.report_expiry(gauge.clone());

    // Half a renewal: the certificate is new, the key still the old one.
    let renewed = pair(2, 2098);
    std::fs::write(&files.cert, &renewed.0).unwrap();
    for trigger in [Trigger::Files, Trigger::Files, Trigger::Signal] {
        cert.reload(trigger);
        assert_eq!(cert.served().serial, "22:01");
    }
    std::fs::write(&files.key, &renewed.1).unwrap();
    cert.reload(Trigger::Files);
    assert_eq!(cert.served().serial, "22:02");
    assert_eq!(gauge.get(), cert.served().not_after.timestamp());

    // An expired pair loads, but is not served in place of a valid one.
    write(dir.path(), &pair(3, 2021));
    cert.reload(Trigger::Signal);
    assert_eq!(cert.served().serial, "22:02");
    // A file that is gone neither.
    std::fs::remove_file(&files.key).unwrap();
    cert.reload(Trigger::Files);
    assert_eq!(cert.served().serial, "22:02");
}
