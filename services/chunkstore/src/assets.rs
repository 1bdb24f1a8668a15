//! Shared assets (files an operator shares from `[share] dirs`, found by name or BLAKE3 hash)
//! as the coordinator's `assets` table holds them, without I/O: one key per (hash, node) so a
//! hash lookup is a prefix scan, what a rescan must put and delete, and how a query matches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `assets`: `<blake3 hex>/<node id>` → [`AssetRecord`] (JSON).
pub const ASSETS: &str = "assets";

/// What a node publishes about one file it shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRecord {
    /// Its name: the path relative to the shared directory, `/`-separated.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One file found by a scan of the shared directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedAsset {
    /// BLAKE3 of its bytes (hex).
    pub hash: String,
    /// What is published.
    pub record: AssetRecord,
    /// Where it is on this node.
    pub path: std::path::PathBuf,
}

/// The key of (hash, node).
pub fn asset_key(hash: &str, node: &str) -> String {
    format!("{hash}/{node}")
}

/// Splits a key into (hash, node).
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let (hash, node) = key.split_once('/')?;
    (is_hash(hash) && !node.is_empty()).then_some((hash, node))
}

/// Whether `s` is a BLAKE3 hash in lowercase hex.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a rescan changes in the table for this node.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PublishPlan {
    /// Keys to write (new or changed).
    pub put: Vec<(String, AssetRecord)>,
    /// Keys to remove (files gone or changed).
    pub delete: Vec<String>,
}

/// The changes that take this node's published entries (`published`: key → record, only this
/// node's) to what `scanned` found. Two files with the same bytes publish one key (the first
/// name in path order).
pub fn plan_publish(
    node: &str,
    published: &BTreeMap<String, AssetRecord>,
    scanned: &[ScannedAsset],
) -> PublishPlan {
    let mut want: BTreeMap<String, AssetRecord> = BTreeMap::new();
    for a in scanned {
        want.entry(asset_key(&a.hash, node))
            .or_insert_with(|| a.record.clone());
    }
    let mut plan = PublishPlan::default();
    for (key, record) in &want {
        if published.get(key) != Some(record) {
            plan.put.push((key.clone(), record.clone()));
        }
    }
    for key in published.keys() {
        if !want.contains_key(key) {
            plan.delete.push(key.clone());
        }
    }
    plan
}

/// A lookup: by exact hash, or by name (the whole relative name or its last component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetQuery {
    /// `hash=`.
    Hash(String),
    /// `name=`.
    Name(String),
}

/// Why a query is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssetQueryError {
    /// Neither or both given, or empty.
    #[error("give exactly one of name= or hash=")]
    OneOf,
    /// Not 64 lowercase hex digits.
    #[error("hash is not a BLAKE3 hash (64 hex digits)")]
    BadHash,
}

impl AssetQuery {
    /// From the query string's `name` and `hash`.
    pub fn from_params(
        name: Option<&str>,
        hash: Option<&str>,
    ) -> Result<AssetQuery, AssetQueryError> {
        match (
            name.filter(|s| !s.is_empty()),
            hash.filter(|s| !s.is_empty()),
        ) {
            (Some(n), None) => Ok(AssetQuery::Name(n.to_string())),
            (None, Some(h)) => {
                let h = h.to_ascii_lowercase();
                if is_hash(&h) {
                    Ok(AssetQuery::Hash(h))
                } else {
                    Err(AssetQueryError::BadHash)
                }
            }
            _ => Err(AssetQueryError::OneOf),
        }
    }

    /// The key prefix to scan.
    pub fn prefix(&self) -> String {
        match self {
            AssetQuery::Hash(h) => format!("{h}/"),
            AssetQuery::Name(_) => String::new(),
        }
    }

    /// Whether an entry answers the query.
    pub fn matches(&self, hash: &str, record: &AssetRecord) -> bool {
        match self {
            AssetQuery::Hash(h) => h == hash,
            AssetQuery::Name(n) => {
                record.name == *n || record.name.rsplit('/').next() == Some(n.as_str())
            }
        }
    }
}

/// One answer to a query: an asset and the nodes that have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetHolders {
    /// BLAKE3 (hex).
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Names it has on the nodes (sorted, distinct).
    pub names: Vec<String>,
    /// Nodes that have it (sorted).
    pub nodes: Vec<String>,
}

/// Groups matching table entries (key, record) by hash.
pub fn answer(query: &AssetQuery, entries: &[(String, AssetRecord)]) -> Vec<AssetHolders> {
    let mut by_hash: BTreeMap<&str, AssetHolders> = BTreeMap::new();
    for (key, record) in entries {
        let Some((hash, node)) = split_key(key) else {
            continue;
        };
        if !query.matches(hash, record) {
            continue;
        }
        let h = by_hash.entry(hash).or_insert_with(|| AssetHolders {
            hash: hash.to_string(),
            size: record.size,
            names: Vec::new(),
            nodes: Vec::new(),
        });
        if !h.names.contains(&record.name) {
            h.names.push(record.name.clone());
        }
        h.nodes.push(node.to_string());
    }
    by_hash
        .into_values()
        .map(|mut h| {
            h.names.sort();
            h.nodes.sort();
            h.nodes.dedup();
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn scanned(hash: &str, name: &str, size: u64) -> ScannedAsset {
        ScannedAsset {
            hash: hash.to_string(),
            record: AssetRecord {
                name: name.to_string(),
                size,
            },
            path: name.into(),
        }
    }

    #[test]
    fn plan_puts_new_and_changed_and_deletes_gone() {
        let mut published = BTreeMap::new();
        published.insert(
            asset_key(H1, "n"),
            AssetRecord {
                name: "a".into(),
                size: 1,
            },
        );
        published.insert(
            asset_key(H2, "n"),
            AssetRecord {
                name: "b".into(),
                size: 2,
            },
        );
        // a unchanged, b gone, c new.
        let plan = plan_publish(
            "n",
            &published,
            &[scanned(H1, "a", 1), scanned(&"3".repeat(64), "c", 3)],
        );
        assert_eq!(plan.delete, vec![asset_key(H2, "n")]);
        assert_eq!(plan.put.len(), 1);
        assert_eq!(plan.put[0].0, asset_key(&"3".repeat(64), "n"));
        // Nothing changes twice.
        let mut after = published.clone();
        after.remove(&asset_key(H2, "n"));
        for (k, r) in plan.put {
            after.insert(k, r);
        }
        let again = plan_publish(
            "n",
            &after,
            &[scanned(H1, "a", 1), scanned(&"3".repeat(64), "c", 3)],
        );
        assert_eq!(again, PublishPlan::default());
    }

    #[test]
    fn queries_parse_and_match() {
        assert_eq!(
            AssetQuery::from_params(None, None),
            Err(AssetQueryError::OneOf)
        );
        assert_eq!(
            AssetQuery::from_params(Some("a"), Some(H1)),
            Err(AssetQueryError::OneOf)
        );
        assert_eq!(
            AssetQuery::from_params(None, Some("xyz")),
            Err(AssetQueryError::BadHash)
        );
        let q = AssetQuery::from_params(None, Some(&H1.to_ascii_uppercase())).unwrap();
        assert_eq!(q.prefix(), format!("{H1}/"));
        let by_name = AssetQuery::from_params(Some("iso.img"), None).unwrap();
        let rec = AssetRecord {
            name: "images/iso.img".into(),
            size: 9,
        };
        assert!(by_name.matches(H1, &rec));
        assert!(AssetQuery::Name("images/iso.img".into()).matches(H1, &rec));
        assert!(!AssetQuery::Name("so.img".into()).matches(H1, &rec));
    }

    #[test]
    fn answers_group_by_hash() {
        let rec = |n: &str| AssetRecord {
            name: n.into(),
            size: 5,
        };
        let entries = vec![
            (asset_key(H1, "b"), rec("x/f")),
            (asset_key(H1, "a"), rec("f")),
            (asset_key(H2, "a"), rec("g")),
            ("garbage".to_string(), rec("f")),
        ];
        let got = answer(&AssetQuery::Name("f".into()), &entries);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].nodes, vec!["a", "b"]);
        assert_eq!(got[0].names, vec!["f", "x/f"]);
    }
}
