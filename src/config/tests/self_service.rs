//! `[self_service]`: where the pages live, and that they hide none of Bitbucket's paths.

use super::*;

#[test]
fn the_pages_live_at_tokengate_unless_moved() {
    assert_eq!(load("", &[]).unwrap().self_service.path, "/tokengate/");
    let moved = load("[self_service]\npath = \"/tokens/\"\n", &[]).unwrap();
    assert_eq!(moved.self_service.path, "/tokens/");
}

#[test]
fn a_pages_path_must_be_a_plain_absolute_directory() {
    for path in ["tokens/", "/tokens", "/", "/a b/", "/x/../y/", "/x//y/"] {
        let refused = message(&format!("[self_service]\npath = \"{path}\"\n"));
        assert!(refused.contains("self_service.path"), "{path}: {refused}");
    }
}

#[test]
fn a_pages_path_that_would_hide_a_protected_path_is_refused() {
    let hidden = message("[self_service]\npath = \"/rest/\"\n");
    assert!(
        hidden.contains("self_service.path") && hidden.contains("would hide /rest/"),
        "{hidden}"
    );
    let hidden = message(
        "[auth]\nprotected_paths = [\"/rest/\", \"/tokens/api/\"]\n[self_service]\npath = \"/tokens/\"\n",
    );
    assert!(hidden.contains("would hide /tokens/api/"), "{hidden}");
    // Pages under a protected path hide nothing of Bitbucket's.
    let config = load("[self_service]\npath = \"/rest/tokengate-pages/\"\n", &[]).unwrap();
    assert_eq!(config.self_service.path, "/rest/tokengate-pages/");
}
