//! Merges the OpenMetrics documents of a node's services into one valid document.
//!
//! Under systemd every service is its own process with its own registry, and some families
//! exist in several of them (`hyphae_rpc_*` in every service that serves RPC). Concatenating
//! the documents would repeat those families, which Prometheus refuses. So the documents are
//! parsed into families (kept in first-seen order, metadata once) and every sample gets a
//! `service` label naming the socket it came from, which also keeps equal label sets apart.

/// One metric family: its metadata lines and its samples, from every service.
#[derive(Debug, Default)]
struct Family {
    name: String,
    meta: Vec<String>,
    samples: Vec<String>,
}

/// The merged document of `(service, document)` pairs, ending with one `# EOF`.
pub fn merge(documents: &[(String, String)]) -> String {
    let mut families: Vec<Family> = vec![];
    for (service, text) in documents {
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() || line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (Some(kind), Some(name)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if !matches!(kind, "TYPE" | "HELP" | "UNIT") {
                    continue;
                }
                let index = family_index(&mut families, name);
                let f = &mut families[index];
                if !f.meta.iter().any(|m| m.starts_with(&format!("# {kind} "))) {
                    f.meta.push(line.to_string());
                }
                current = Some(index);
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let index = match current {
                Some(i) if belongs_to(line, &families[i].name) => i,
                _ => family_index(&mut families, sample_name(line)),
            };
            families[index].samples.push(with_service(line, service));
        }
    }
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        for m in &f.meta {
            out.push_str(m);
            out.push('\n');
        }
        for s in &f.samples {
            out.push_str(s);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

fn family_index(families: &mut Vec<Family>, name: &str) -> usize {
    if let Some(i) = families.iter().position(|f| f.name == name) {
        return i;
    }
    families.push(Family {
        name: name.to_string(),
        ..Family::default()
    });
    families.len() - 1
}

/// The metric name of a sample line (up to `{` or a space).
fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// Whether a sample belongs to family `name` (counters add `_total`, histograms `_bucket`...).
fn belongs_to(line: &str, name: &str) -> bool {
    let sample = sample_name(line);
    sample == name
        || sample
            .strip_prefix(name)
            .is_some_and(|suffix| suffix.starts_with('_'))
}

/// The sample with `service="…"` as its first label.
fn with_service(line: &str, service: &str) -> String {
    let name = sample_name(line);
    let rest = &line[name.len()..];
    let service = service.replace('\\', "\\\\").replace('"', "\\\"");
    match rest.strip_prefix('{') {
        Some(labels) if labels.starts_with('}') => {
            format!("{name}{{service=\"{service}\"{labels}")
        }
        Some(labels) => format!("{name}{{service=\"{service}\",{labels}"),
        None => format!("{name}{{service=\"{service}\"}}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RPC: &str = "# HELP hyphae_rpc_requests RPC requests.\n# TYPE hyphae_rpc_requests counter\nhyphae_rpc_requests_total{method=\"a\"} 3\n# HELP hyphae_rpc_connections Open.\n# TYPE hyphae_rpc_connections gauge\nhyphae_rpc_connections 2\n# EOF\n";

    #[test]
    fn shared_families_appear_once_with_a_service_label() {
        let beacon = "# TYPE hyphae_beacon_members gauge\nhyphae_beacon_members 4\n# EOF\n";
        let merged = merge(&[
            ("coordinator".into(), RPC.into()),
            ("beacon".into(), beacon.into()),
            (
                "chunkstore".into(),
                RPC.replace(" 3", " 5").replace(" 2", " 1"),
            ),
        ]);
        assert_eq!(
            merged.matches("# TYPE hyphae_rpc_requests counter").count(),
            1
        );
        assert_eq!(merged.matches("# HELP hyphae_rpc_connections").count(), 1);
        assert_eq!(merged.matches("# EOF").count(), 1);
        assert!(merged.ends_with("# EOF\n"));
        assert!(
            merged.contains("hyphae_rpc_requests_total{service=\"coordinator\",method=\"a\"} 3")
        );
        assert!(merged.contains("hyphae_rpc_requests_total{service=\"chunkstore\",method=\"a\"} 5"));
        assert!(merged.contains("hyphae_rpc_connections{service=\"chunkstore\"} 1"));
        assert!(merged.contains("hyphae_beacon_members{service=\"beacon\"} 4"));
        // A family's samples are contiguous: both services' connections follow its metadata.
        let type_at = merged.find("# TYPE hyphae_rpc_connections").unwrap();
        let c1 = merged
            .find("hyphae_rpc_connections{service=\"coordinator\"}")
            .unwrap();
        let c2 = merged
            .find("hyphae_rpc_connections{service=\"chunkstore\"}")
            .unwrap();
        let beacon_at = merged.find("# TYPE hyphae_beacon_members").unwrap();
        assert!(type_at < c1 && c1 < c2 && (beacon_at < type_at || beacon_at > c2));
    }

    #[test]
    fn empty_labels_and_garbage_lines_are_handled() {
        assert_eq!(with_service("x{} 1", "s"), "x{service=\"s\"} 1");
        let merged = merge(&[("s".into(), "# junk\n#\nno_meta 1\n".into())]);
        assert_eq!(merged, "no_meta{service=\"s\"} 1\n# EOF\n");
        assert_eq!(merge(&[]), "# EOF\n");
    }
}
