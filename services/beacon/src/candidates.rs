//! Step 3 of the discovery chain: admission addresses the operator pinned, in the config
//! (`[discovery] candidates`) or on the kernel command line (`hyphae.candidates=IP,IP`).

use std::net::SocketAddr;

/// The kernel command line parameter that carries candidates (PXE boots, no config file).
pub const CMDLINE_KEY: &str = "hyphae.candidates=";

/// The candidate list from the kernel command line text (`/proc/cmdline`).
pub fn from_cmdline(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(CMDLINE_KEY))
        .flat_map(|list| list.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Config candidates first, then the kernel's, parsed to admission endpoints; an entry that
/// is not `IP[:PORT]` is reported back so that the service can log it once.
pub fn resolve(
    config: &[String],
    cmdline: &[String],
    default_port: u16,
) -> (Vec<SocketAddr>, Vec<String>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for c in config.iter().chain(cmdline) {
        match hyphae_coordinator::join::parse_peer(c, default_port) {
            Some(a) if !ok.contains(&a) => ok.push(a),
            Some(_) => {}
            None => bad.push(c.clone()),
        }
    }
    (ok, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_lists_are_read() {
        let line =
            "console=ttyS0 hyphae.candidates=10.0.0.1,10.0.0.2:9 quiet hyphae.candidates=[::1]:7";
        assert_eq!(
            from_cmdline(line),
            vec!["10.0.0.1", "10.0.0.2:9", "[::1]:7"]
        );
        assert!(from_cmdline("console=ttyS0 hyphae.join=x").is_empty());
    }

    #[test]
    fn config_comes_first_duplicates_and_junk_are_sorted_out() {
        let (ok, bad) = resolve(
            &["10.0.0.1".into(), "nonsense".into()],
            &["10.0.0.1:7445".into(), "10.0.0.3".into()],
            7445,
        );
        assert_eq!(
            ok,
            vec![
                "10.0.0.1:7445".parse::<SocketAddr>().unwrap(),
                "10.0.0.3:7445".parse().unwrap()
            ]
        );
        assert_eq!(bad, vec!["nonsense".to_string()]);
    }
}
