//! Every crate in the tree is a workspace member and none is left out of a
//! plain `cargo nextest run`: a crate outside the workspace, or a
//! `default-members` list, would leave its unit tests unrun in CI.

use std::path::{Path, PathBuf};

/// Directories under `dir` holding a `Cargo.toml`, skipping build output and
/// installed packages.
fn crates_under(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = e.path();
        let name = e.file_name();
        if !path.is_dir() || [".git", "target", "node_modules"].contains(&&*name.to_string_lossy())
        {
            continue;
        }
        if path.join("Cargo.toml").is_file() {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
        crates_under(root, &path, out);
    }
}

#[test]
fn every_crate_is_a_member_and_all_are_tested_by_default() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let workspace = manifest["workspace"].as_table().unwrap();
    assert!(
        !workspace.contains_key("default-members"),
        "a `default-members` list leaves the other crates' tests out of `cargo nextest run`"
    );
    let mut members: Vec<String> = workspace["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    members.sort();
    let mut found = Vec::new();
    crates_under(&root, &root, &mut found);
    found.sort();
    assert!(found.len() > 30, "the search found the crates: {found:?}");
    assert_eq!(
        found, members,
        "every crate in the tree is listed in the workspace's `members` (and only those)"
    );
}
