//! `strata serve` starting up, as a new user meets it: the `--listen`
//! forms, what a taken port or a data directory in use says (once, with
//! no backtrace, leaving nothing behind), and the logs (the version, no
//! colour off a terminal, JSON on request, RUST_LOG in --help).

mod common;

use common::{connect, free_port, serve, strata};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use std::path::Path;
use std::process::{Output, Stdio};

use admin::bigtable_table_admin_client::BigtableTableAdminClient;

/// Runs `strata serve --data-dir DIR --listen LISTEN` to its end (for
/// servers that must not start), with backtraces asked for, so the test
/// sees that none is printed.
fn serve_to_end(dir: &Path, listen: &str) -> Output {
    strata()
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", listen])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run strata serve")
}

/// Stderr of a failed start, checked to be one `error:` line at the end
/// and no "Caused by" or backtrace; returns that line.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    for noise in ["Caused by", "backtrace", "Backtrace"] {
        assert!(!stderr.contains(noise), "{stderr}");
    }
    errors[0].to_string()
}

/// Answers ListTables, so the server is up and serving.
async fn list_tables(port: u16) {
    BigtableTableAdminClient::new(connect(port).await)
        .list_tables(admin::ListTablesRequest {
            parent: "projects/my-project/instances/my-instance".into(),
            ..Default::default()
        })
        .await
        .expect("list tables");
}

#[test]
fn a_taken_port_is_named_and_leaves_no_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tmp.path().join("data");
    let line = error_line(&serve_to_end(&dir, &addr.to_string()));
    assert!(
        line.starts_with(&format!(
            "error: cannot listen on {addr}: the port is in use by another process"
        )),
        "{line}"
    );
    assert!(!dir.exists(), "{} was created", dir.display());
}

#[test]
fn a_bad_listen_address_names_the_expected_form() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let out = serve_to_end(&dir, "8086");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HOST:PORT, e.g. 127.0.0.1:8086, localhost:8086 or :8086"),
        "{stderr}"
    );
    assert!(!dir.exists(), "{} was created", dir.display());
}

#[tokio::test]
async fn a_data_dir_in_use_is_said_so_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let port = free_port();
    let _first = serve(&dir, &format!("127.0.0.1:{port}"), Stdio::null());
    list_tables(port).await;
    let out = serve_to_end(&dir, &format!("127.0.0.1:{}", free_port()));
    let line = error_line(&out);
    assert_eq!(
        line,
        format!(
            "error: data directory {} is in use by another process (another strata serve?); \
             stop it or choose another --data-dir",
            dir.display()
        )
    );
}

/// Serves with `listen` (on `port`), answers a request, and returns the
/// server's stderr.
async fn serve_and_log(listen: &str, port: u16, extra: &[&str]) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("stderr.log");
    let server = common::Serve(
        strata()
            .args(["serve", "--data-dir"])
            .arg(tmp.path().join("data"))
            .args(["--listen", listen])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata serve"),
    );
    list_tables(port).await;
    drop(server);
    std::fs::read_to_string(&log).expect("read log")
}

#[tokio::test]
async fn listen_takes_a_bare_port_and_host_names() {
    let port = free_port();
    let log = serve_and_log(&format!(":{port}"), port, &[]).await;
    assert!(
        log.contains(&format!(
            "serving the Bigtable API on 0.0.0.0:{port}; \
             clients: export BIGTABLE_EMULATOR_HOST=127.0.0.1:{port}"
        )),
        "{log}"
    );
    let port = free_port();
    let log = serve_and_log(&format!("localhost:{port}"), port, &[]).await;
    assert!(
        log.contains(&format!("serving the Bigtable API on 127.0.0.1:{port}")),
        "{log}"
    );
}

#[tokio::test]
async fn logs_name_the_version_without_colour_off_a_terminal() {
    let port = free_port();
    let log = serve_and_log(&format!("127.0.0.1:{port}"), port, &[]).await;
    let version = format!("strata {} starting", env!("CARGO_PKG_VERSION"));
    assert!(log.lines().next().unwrap_or("").contains(&version), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}

#[tokio::test]
async fn logs_are_json_lines_on_request() {
    let port = free_port();
    let log = serve_and_log(
        &format!("127.0.0.1:{port}"),
        port,
        &["--log-format", "json"],
    )
    .await;
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "{log}");
        assert!(line.contains("\"level\":"), "{log}");
    }
    let version = format!("strata {} starting", env!("CARGO_PKG_VERSION"));
    assert!(lines[0].contains(&version), "{log}");
}

#[test]
fn serve_help_documents_logging() {
    let help = common::help("serve");
    for want in ["RUST_LOG", "--log-format", "json", "HOST:PORT"] {
        assert!(help.contains(want), "{want} missing from\n{help}");
    }
}

/// The server turns transparent huge pages off for its process, unless
/// told to leave them to the system (`--transparent-huge-pages system`):
/// the kernel's THP_enabled in /proc/PID/status says which.
#[tokio::test]
async fn transparent_huge_pages_are_off_unless_left_to_the_system() {
    if !Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
        eprintln!("this kernel has no transparent huge pages: nothing to check");
        return;
    }
    for (flag, expected) in [(None, "0"), (Some("system"), "1")] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut cmd = strata();
        cmd.args(["serve", "--data-dir"])
            .arg(tmp.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(f) = flag {
            cmd.args(["--transparent-huge-pages", f]);
        }
        let server = common::Serve(cmd.spawn().expect("start strata serve"));
        list_tables(port).await;
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id()))
            .expect("read /proc/PID/status");
        let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
            eprintln!("this kernel does not report THP_enabled: nothing to check");
            return;
        };
        assert_eq!(
            line.split_whitespace().nth(1),
            Some(expected),
            "{flag:?}: {line}"
        );
    }
}
