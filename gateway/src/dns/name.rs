//! Parsing a query name into what it asks for. Network-facing (DNS queries, the resolve API,
//! `hyphae name set`), so it is strict, allocation-light and fuzzed (`fuzz/fuzz_targets/mesh_name.rs`).

use super::ZONE;

/// The built-in names every gateway answers for.
pub const BUILT_INS: [&str; 3] = ["hypermesh", "assets", "trust"];

/// What a name in the mesh zone refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshName {
    /// `hyphae.internal` itself.
    Apex,
    /// `<node>.nodes.hyphae.internal` (node name or id).
    Node(String),
    /// `<service>.services.hyphae.internal`.
    Service(String),
    /// `hypermesh`, `assets` or `trust`.
    BuiltIn(&'static str),
    /// A name from the namespace (`hyphae name set`).
    User(String),
}

/// Why a name is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid DNS name (empty label, bad character, too long).
    #[error("invalid name: {0}")]
    Invalid(&'static str),
    /// A valid name outside `hyphae.internal.`.
    #[error("not in the {ZONE} zone")]
    OutOfZone,
    /// A name in the zone that cannot exist (e.g. `a.b.nodes.hyphae.internal`).
    #[error("no such name in the zone")]
    NoSuchName,
}

/// Checks one DNS label of a mesh name: 1–63 of `a-z0-9-`, not starting or ending with `-`.
pub fn check_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::Invalid("empty label"));
    }
    if label.len() > 63 {
        return Err(NameError::Invalid("label longer than 63 bytes"));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(NameError::Invalid("labels hold only a-z, 0-9 and -"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::Invalid("labels do not start or end with -"));
    }
    Ok(())
}

/// Parses a name. Relative names (`hypermesh`, `n1.nodes`) are taken as inside the zone, the
/// way a resolver with the search domain `hyphae.internal` sends them; case is ignored.
pub fn parse(name: &str) -> Result<MeshName, NameError> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if lower.is_empty() {
        return Err(NameError::Invalid("empty name"));
    }
    if lower.len() > 253 {
        return Err(NameError::Invalid("name longer than 253 bytes"));
    }
    let relative = if lower == ZONE {
        return Ok(MeshName::Apex);
    } else if let Some(r) = lower.strip_suffix(ZONE).and_then(|r| r.strip_suffix('.')) {
        r
    } else if name.ends_with('.') {
        // Fully qualified and not ours.
        for label in lower.split('.') {
            check_label(label)?;
        }
        return Err(NameError::OutOfZone);
    } else {
        lower.as_str()
    };
    let labels: Vec<&str> = relative.split('.').collect();
    for label in &labels {
        check_label(label)?;
    }
    match labels.as_slice() {
        [one] => match BUILT_INS.iter().find(|b| *b == one) {
            Some(b) => Ok(MeshName::BuiltIn(b)),
            None if *one == "nodes" || *one == "services" => Err(NameError::NoSuchName),
            None => Ok(MeshName::User(one.to_string())),
        },
        [node, "nodes"] => Ok(MeshName::Node(node.to_string())),
        [service, "services"] => Ok(MeshName::Service(service.to_string())),
        _ if lower.ends_with(ZONE) => Err(NameError::NoSuchName),
        _ => Err(NameError::OutOfZone),
    }
}

/// Checks a name an administrator registers (`hyphae name set NAME`): one label, not a
/// built-in or a reserved word.
pub fn check_user_name(name: &str) -> Result<String, NameError> {
    match parse(name)? {
        MeshName::User(n) => Ok(n),
        _ => Err(NameError::Invalid(
            "a user name is one label, not hypermesh/assets/trust/nodes/services",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_zone() {
        assert_eq!(parse("hyphae.internal."), Ok(MeshName::Apex));
        assert_eq!(
            parse("N1.nodes.hyphae.internal."),
            Ok(MeshName::Node("n1".into()))
        );
        assert_eq!(parse("n1.nodes"), Ok(MeshName::Node("n1".into())));
        assert_eq!(
            parse("chunkstore.services.hyphae.internal"),
            Ok(MeshName::Service("chunkstore".into()))
        );
        assert_eq!(parse("hypermesh"), Ok(MeshName::BuiltIn("hypermesh")));
        assert_eq!(
            parse("trust.hyphae.internal."),
            Ok(MeshName::BuiltIn("trust"))
        );
        assert_eq!(parse("wiki"), Ok(MeshName::User("wiki".into())));
        assert_eq!(parse("example.com."), Err(NameError::OutOfZone));
        assert_eq!(parse("a.b.c"), Err(NameError::OutOfZone));
        assert_eq!(
            parse("a.b.nodes.hyphae.internal."),
            Err(NameError::NoSuchName)
        );
        assert_eq!(parse("nodes.hyphae.internal."), Err(NameError::NoSuchName));
        assert!(parse("").is_err());
        assert!(parse("a..b").is_err());
        assert!(parse("-a").is_err());
        assert!(parse("a_b").is_err());
        assert!(parse(&"a".repeat(64)).is_err());
        assert!(check_user_name("hypermesh").is_err());
        assert!(check_user_name("a.nodes").is_err());
        assert_eq!(check_user_name("Wiki").unwrap(), "wiki");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }
    }
}
