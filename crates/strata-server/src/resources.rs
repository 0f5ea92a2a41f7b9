//! Resource names of the instance admin API (`projects/P`,
//! `projects/P/instances/I`, `…/clusters/C`, `…/appProfiles/A`) and the id
//! rules Bigtable enforces when a resource is created.

use crate::convert::invalid;
use tonic::Status;

/// `projects/P` → P.
pub fn project(parent: &str) -> Result<&str, Status> {
    match parent.split('/').collect::<Vec<_>>()[..] {
        ["projects", p] if !p.is_empty() => Ok(p),
        _ => Err(invalid(format!(
            "invalid parent {parent:?}: want projects/<project>"
        ))),
    }
}

/// An instance's full name, checked: `projects/P/instances/I`.
pub fn instance(name: &str) -> Result<&str, Status> {
    match name.split('/').collect::<Vec<_>>()[..] {
        ["projects", p, "instances", i] if !p.is_empty() && !i.is_empty() => Ok(name),
        _ => Err(invalid(format!(
            "invalid instance name {name:?}: want projects/<project>/instances/<instance>"
        ))),
    }
}

/// `projects/P/instances/I/<collection>/ID` → (`projects/P/instances/I`, ID).
pub fn child<'a>(name: &'a str, collection: &str) -> Result<(&'a str, &'a str), Status> {
    let bad = || {
        invalid(format!(
            "invalid name {name:?}: want projects/<project>/instances/<instance>/{collection}/<id>"
        ))
    };
    let (parent, id) = name.rsplit_once('/').ok_or_else(bad)?;
    let (inst, coll) = parent.rsplit_once('/').ok_or_else(bad)?;
    if coll != collection || id.is_empty() {
        return Err(bad());
    }
    instance(inst).map_err(|_| bad())?;
    Ok((inst, id))
}

/// The last segment of a name (an id).
pub fn id_of(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn check_id(
    what: &str,
    id: &str,
    len: std::ops::RangeInclusive<usize>,
    first: impl Fn(u8) -> bool,
    rest: impl Fn(u8) -> bool,
    last: impl Fn(u8) -> bool,
    rule: &str,
) -> Result<(), Status> {
    let b = id.as_bytes();
    let ok = len.contains(&b.len())
        && b.first().is_some_and(|&c| first(c))
        && b.iter().all(|&c| rest(c))
        && b.last().is_some_and(|&c| last(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {what} {id:?}: must match {rule} and be {} to {} characters",
            len.start(),
            len.end()
        )))
    }
}

fn lower_digit_dash(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
}

/// Bigtable's instance ids: `[a-z][a-z0-9-]*[a-z0-9]`, 6 to 33 characters.
pub fn check_instance_id(id: &str) -> Result<(), Status> {
    check_id(
        "instance_id",
        id,
        6..=33,
        |c| c.is_ascii_lowercase(),
        lower_digit_dash,
        |c| c != b'-',
        "[a-z][a-z0-9-]*[a-z0-9]",
    )
}

/// Bigtable's cluster ids: `[a-z][-a-z0-9]*`, 6 to 30 characters.
pub fn check_cluster_id(id: &str) -> Result<(), Status> {
    check_id(
        "cluster_id",
        id,
        6..=30,
        |c| c.is_ascii_lowercase(),
        lower_digit_dash,
        |_| true,
        "[a-z][-a-z0-9]*",
    )
}

/// App profile ids: `[_a-zA-Z0-9][-_.a-zA-Z0-9]*`, 1 to 50 characters.
pub fn check_app_profile_id(id: &str) -> Result<(), Status> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    check_id(
        "app_profile_id",
        id,
        1..=50,
        word,
        |c| word(c) || c == b'-' || c == b'.',
        |_| true,
        "[_a-zA-Z0-9][-_.a-zA-Z0-9]*",
    )
}

/// An instance's display name: 4 to 30 characters, as Bigtable requires.
pub fn check_display_name(name: &str) -> Result<(), Status> {
    let n = name.chars().count();
    if (4..=30).contains(&n) {
        Ok(())
    } else {
        Err(invalid(format!(
            "display_name {name:?} must be 4 to 30 characters, got {n}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(project("projects/p").unwrap(), "p");
        assert!(project("projects/").is_err());
        assert!(project("projects/p/instances/i").is_err());
        assert!(instance("projects/p/instances/i").is_ok());
        assert!(instance("projects/p/instances/").is_err());
        assert_eq!(
            child("projects/p/instances/i/clusters/c1", "clusters").unwrap(),
            ("projects/p/instances/i", "c1")
        );
        assert!(child("projects/p/instances/i/clusters/c1", "appProfiles").is_err());
        assert!(child("projects/p/clusters/c1", "clusters").is_err());
        assert!(check_instance_id("my-inst").is_ok());
        for bad in ["short", "My-instance", "inst-", "1nstance", &"a".repeat(34)] {
            assert!(check_instance_id(bad).is_err(), "{bad}");
        }
        assert!(check_cluster_id("my-inst-c1").is_ok());
        assert!(check_cluster_id("c1").is_err());
        assert!(check_app_profile_id("default").is_ok());
        assert!(check_app_profile_id("-x").is_err());
        assert!(check_display_name("abc").is_err());
        assert!(check_display_name("My instance").is_ok());
    }
}
