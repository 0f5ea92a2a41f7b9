//! The README's examples agree with the binary: every project and
//! instance it names (cbt flags, `~/.cbtrc`, table names) is the one
//! `strata tablets` defaults to, and the logging it documents exists.

mod common;

use common::help;

const README: &str = include_str!("../../../README.md");

/// The `[default: X]` of `flag` in `help`.
fn default_of(help: &str, flag: &str) -> String {
    let line = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(flag))
        .find(|l| l.contains("[default: "))
        .unwrap_or_else(|| panic!("no default for {flag} in\n{help}"));
    let rest = &line[line.find("[default: ").unwrap() + "[default: ".len()..];
    rest[..rest.find(']').unwrap()].to_string()
}

/// Every value the README gives `key`: `-project my-project` (cbt's
/// flag) and `project = my-project` (`~/.cbtrc`), trimmed of quotes.
fn values_of(key: &str) -> Vec<String> {
    let flag = format!("-{key}");
    let words: Vec<&str> = README.split_whitespace().collect();
    words
        .windows(3)
        .filter_map(|w| match w {
            [k, v, _] if *k == flag => Some(*v),
            [k, "=", v] if *k == key => Some(*v),
            _ => None,
        })
        .map(|v| {
            v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .collect()
}

/// The (project, instance) of every `projects/P/instances/I` in the README.
fn resource_names() -> Vec<(String, String)> {
    README
        .match_indices("projects/")
        .filter_map(|(i, _)| {
            let parts: Vec<&str> = README[i + "projects/".len()..].splitn(4, '/').collect();
            match parts[..] {
                [p, "instances", i, ..] => {
                    let i = i.split(|c: char| !c.is_ascii_alphanumeric() && c != '-');
                    Some((p.to_string(), i.take(1).collect()))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn the_readme_uses_the_project_and_instance_strata_tablets_defaults_to() {
    let help = help("tablets");
    let project = default_of(&help, "--project");
    let instance = default_of(&help, "--instance");
    for (key, want) in [("project", &project), ("instance", &instance)] {
        let found = values_of(key);
        assert!(!found.is_empty(), "no -{key} in the README");
        for v in found {
            assert_eq!(
                &v, want,
                "README: {key} {v}, but strata tablets defaults to {want}"
            );
        }
    }
    for (p, i) in resource_names() {
        assert_eq!(
            (&p, &i),
            (&project, &instance),
            "README names projects/{p}/instances/{i}"
        );
    }
}

#[test]
fn the_readme_documents_logging_and_the_binary() {
    for want in [
        "RUST_LOG",
        "--log-format",
        "target/release/strata",
        "cargo install --path crates/strata",
        ".cbtrc",
    ] {
        assert!(README.contains(want), "README lacks {want}");
    }
}
