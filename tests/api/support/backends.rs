//! [`both_backends!`]: every case written once and run on PostgreSQL and on SQLite.

/// Generates `mod <case> { postgres, sqlite }` tests for each case, so a case shows as
/// `<module>::<case>::postgres` and `…::sqlite`:
///
/// - `both_backends!(case, …)`: each case is an `async fn case(backend: Backend)` that starts
///   its gateways on a fresh database of that [`Backend`];
/// - `both_backends!(store: case, …)`: each takes a fresh, migrated `Arc<dyn Store>`;
/// - `both_backends!(url: case, …)`: each takes the URL of a fresh database (to open a second
///   store on it, or to reach it directly).
///
/// A gateway case runs on a multi-threaded runtime of two workers (it may block a thread
/// while it waits for a child process); a store case on the default one.
///
/// [`Backend`]: crate::support::app::Backend
macro_rules! both_backends {
    (store: $($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn postgres() {
                super::$case(crate::support::fresh_postgres().await).await;
            }
            #[tokio::test]
            async fn sqlite() {
                let (store, _dir) = crate::support::fresh_sqlite().await;
                super::$case(store).await;
            }
        }
    )*};
    (url: $($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn postgres() {
                super::$case(crate::support::fresh_postgres_url().await).await;
            }
            #[tokio::test]
            async fn sqlite() {
                let (url, _dir) = crate::support::fresh_sqlite_url().await;
                super::$case(url).await;
            }
        }
    )*};
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use crate::support::app::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(Backend::Postgres).await;
            }
        }
    )*};
}
pub(crate) use both_backends;
