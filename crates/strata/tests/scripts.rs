//! The test scripts' own behaviour: scripts/test-summary.sh adds up cargo
//! test's results and finds pytest's summary line (which scripts/test.sh
//! prints at the end), and scripts/test-python.sh says what a fresh
//! machine lacks (a recent Python, its venv module).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name)
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("run script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn the_summary_adds_up_cargo_test_and_quotes_pytest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cargo = tmp.path().join("cargo.log");
    let pytest = tmp.path().join("pytest.log");
    std::fs::write(
        &cargo,
        "     Running unittests src/lib.rs (target/debug/deps/strata_engine-1)\n\
         test a ... ok\n\
         test result: ok. 120 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 3.01s\n\
         test result: FAILED. 7 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
         \x20  Doc-tests strata_engine\n\
         test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
    )
    .unwrap();
    std::fs::write(
        &pytest,
        "..F.s                                   [100%]\n\
         =========================== short test summary info ============================\n\
         FAILED test_x.py::test_b - assert 0\n\
         1 failed, 3 passed, 1 skipped in 0.15s\n",
    )
    .unwrap();
    let (out, stdout, stderr) = run(Command::new("bash")
        .arg(script("test-summary.sh"))
        .args([&cargo, &pytest]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "cargo test: 127 passed, 1 failed, 2 ignored (3 test binaries and doc-test runs)\n\
         pytest:     1 failed, 3 passed, 1 skipped in 0.15s\n"
    );

    let s3 = tmp.path().join("pytest-s3.log");
    std::fs::write(&s3, "....\n4 passed in 1.50s\n").unwrap();
    let (out, stdout, stderr) = run(Command::new("bash")
        .arg(script("test-summary.sh"))
        .args([&cargo, &pytest, &s3]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.ends_with(
            "pytest:     1 failed, 3 passed, 1 skipped in 0.15s\n\
             pytest, S3: 4 passed in 1.50s\n"
        ),
        "{stdout}"
    );

    let none = tmp.path().join("missing.log");
    let (out, stdout, _) = run(Command::new("bash")
        .arg(script("test-summary.sh"))
        .args([&none, &none]));
    assert!(out.status.success());
    assert_eq!(
        stdout,
        "cargo test: no test results (did it build?)\n\
         pytest:     no summary (did it run?)\n"
    );
}

/// Runs scripts/test-python.sh with `python` (a shell script) as PYTHON,
/// against a server address nothing needs, with its venv in a temp dir.
fn test_python_with(python: &str) -> (Output, String, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = tmp.path().join("python3");
    std::fs::write(&fake, format!("#!/bin/sh\n{python}\n")).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let venv = tmp.path().join("venv");
    let (out, _, stderr) = run(Command::new("bash")
        .arg(script("test-python.sh"))
        .env("PYTHON", &fake)
        .env("STRATA_PYVENV", &venv)
        .env("STRATA_TEST_HOST", "127.0.0.1:1"));
    (out, stderr, venv, tmp)
}

#[test]
fn test_python_names_an_old_python() {
    let (out, stderr, _, _tmp) = test_python_with(
        r#"case "$1" in --version) echo "Python 3.8.10";; -c) exit 1;; esac; exit 0"#,
    );
    assert!(!out.status.success());
    assert!(
        stderr.contains("Python 3.8.10 is too old; the suite needs Python >= 3.10"),
        "{stderr}"
    );
}

#[test]
fn test_python_names_the_missing_venv_module() {
    let (out, stderr, venv, _tmp) = test_python_with(
        r#"case "$1" in -m) mkdir -p "$3"; echo "ensurepip is not available" >&2; exit 1;; esac; exit 0"#,
    );
    assert!(!out.status.success());
    assert!(stderr.contains("apt-get install python3-venv"), "{stderr}");
    assert!(!venv.exists(), "a half-made venv was left behind");
}
