//! The SQLite database holds argon2 hashes and sealed credentials: the file and the WAL and
//! shared-memory files beside it are readable by the gateway's user only, and so is a
//! directory the store creates for them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use tokengate::store;

use super::{at, new_token};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn a_new_database_and_its_directory_are_private() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data").join("tokengate");
    let file = data.join("tokengate.db");
    let store = store::connect(&format!("sqlite://{}", file.display()), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
        .insert_token(&new_token("u", at("2024-01-01T00:00:00Z")))
        .await
        .unwrap();

    let wal = data.join("tokengate.db-wal");
    let shm = data.join("tokengate.db-shm");
    for path in [&file, &wal, &shm] {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    for created in [&data, data.parent().unwrap()] {
        assert_eq!(mode(created), 0o700, "{}", created.display());
    }
    assert_eq!(
        mode(dir.path()),
        0o755,
        "a directory that existed keeps its mode"
    );
}

#[tokio::test]
async fn an_existing_database_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokengate.db");
    std::fs::write(&file, b"").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = store::connect(&format!("sqlite://{}", file.display()), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(mode(&file), 0o640);
}
