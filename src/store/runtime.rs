//! Where store I/O runs. A PostgreSQL connection belongs to the runtime that opened it, and
//! each proxy worker runs a runtime of its own; the lookups a request needs are handed to the
//! control runtime, which owns the pool and outlives the workers, so no pooled connection is
//! ever tied to a worker (and broken when that worker stops at shutdown).

use std::future::Future;

use tokio::runtime::Handle;

use super::StoreError;

/// A handle to the runtime that owns the store's connections.
#[derive(Debug, Clone)]
pub struct StoreRuntime(Handle);

impl StoreRuntime {
    /// The runtime this is called on.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    #[must_use]
    pub fn current() -> Self {
        Self(Handle::current())
    }

    /// Runs `work` on the store's runtime and waits for it here.
    ///
    /// # Errors
    ///
    /// `work`'s own error, or [`StoreError::Unavailable`] when the store's runtime is shutting
    /// down.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        match self.0.spawn(work).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolClosed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_the_store_runtime() {
        let store = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store-runtime")
            .enable_all()
            .build()
            .unwrap();
        let on_store = StoreRuntime(store.handle().clone());
        let worker = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ran_on = worker
            .block_on(on_store.run(async { Ok(std::thread::current().name().map(str::to_owned)) }))
            .unwrap();
        assert_eq!(ran_on.as_deref(), Some("store-runtime"));
    }

    #[test]
    fn a_stopped_store_runtime_reads_as_unavailable() {
        let store = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let on_store = StoreRuntime(store.handle().clone());
        drop(store);
        let worker = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = worker.block_on(on_store.run(async { Ok(()) }));
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
    }
}
