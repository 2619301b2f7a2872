// Shared by the test support files (included with `include!`): external
// tools a test runs, found on PATH or named in a clear failure.

/// A command for an external tool the test needs. A missing tool fails the
/// test with its name and where it comes from, never with a bare "No such
/// file or directory" (`.ci/setup` installs them all).
#[allow(dead_code)]
pub fn tool(name: &str) -> std::process::Command {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{name}`, which is not on PATH: run `.ci/setup` (as root), which installs it with apt-get"
    );
    std::process::Command::new(name)
}
