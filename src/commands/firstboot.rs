//! `hyphae firstboot`: what a freshly flashed node does once, before its services start
//! (`hyphae-firstboot.service`).
//!
//! 1. The node identity (its Ed25519 key) is created, so the node id exists before any service.
//! 2. The settings an operator left on the boot partition (`hyphae.toml`, the FAT partition every
//!    computer can write) and on the kernel command line (`hyphae.<section>.<key>=<value>`) are
//!    checked and installed as the node's configuration. The boot-partition file is laid over the
//!    configuration the image ships (its keys win; the keys it does not name, such as the image's
//!    ports 443 and 53, stay); command-line settings override single keys on top of both.
//! 3. `<state>/firstboot.done` records that it ran; the unit does not run again while it exists.
//!
//! A file that is not valid is refused with a message naming the key, and nothing is installed.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hyphae_core::config::{Config, ConfigError};
use hyphae_core::identity::{IdentityError, NodeKey};
use hyphae_core::paths::NodePaths;
use hyphae_core::secret_file::{self, Visibility};

/// Where the boot partition is mounted: the Raspberry Pi's firmware partition, then the ESP at
/// its Debian and systemd mount points.
const DEFAULT_BOOT_CONFIGS: [&str; 4] = [
    "/boot/firmware/hyphae.toml",
    "/boot/efi/hyphae.toml",
    "/efi/hyphae.toml",
    "/boot/hyphae.toml",
];

/// Options of `hyphae firstboot`.
#[derive(Debug, clap::Args)]
pub struct FirstbootArgs {
    /// A hyphae.toml to install from the boot partition; the first that exists is used.
    #[arg(long = "boot-config", value_name = "FILE", default_values_t = DEFAULT_BOOT_CONFIGS.map(String::from))]
    boot_config: Vec<String>,
    /// The kernel command line to read `hyphae.<section>.<key>=<value>` settings from.
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    cmdline: PathBuf,
}

/// Why first boot could not finish.
#[derive(Debug, thiserror::Error)]
pub enum FirstbootError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// The boot-partition file is not TOML at all.
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    /// A `hyphae.*` kernel command-line argument is malformed.
    #[error("kernel command line argument `{arg}`: {reason}")]
    Cmdline { arg: String, reason: &'static str },
    /// The resulting configuration breaks a rule of `hyphae.toml`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node key could not be created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// One `hyphae.<path>=<value>` setting from the kernel command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Key path below the root table, e.g. `["node", "name"]`.
    pub path: Vec<String>,
    /// The value: TOML when it parses as a TOML value (`7440`, `true`, `"x"`), else a string.
    pub value: toml::Value,
}

/// Splits a kernel command line into arguments the way the kernel does: on blanks, except inside
/// double quotes (which are removed).
fn split_cmdline(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    args.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

/// The `hyphae.*` settings of a kernel command line, in order (a later one wins).
pub fn parse_cmdline(text: &str) -> Result<Vec<Setting>, FirstbootError> {
    let mut settings = Vec::new();
    for arg in split_cmdline(text) {
        let Some(rest) = arg.strip_prefix("hyphae.") else {
            continue;
        };
        let bad = |reason| FirstbootError::Cmdline {
            arg: arg.clone(),
            reason,
        };
        let (key, raw) = rest
            .split_once('=')
            .ok_or_else(|| bad("expected hyphae.<section>.<key>=<value>"))?;
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        if path.len() < 2 {
            return Err(bad("expected hyphae.<section>.<key>=<value>"));
        }
        if path.iter().any(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(bad("key parts are letters, digits, '_' or '-'"));
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        settings.push(Setting { path, value });
    }
    Ok(settings)
}

/// Sets `setting` in `table`, creating the tables on its path.
fn apply(table: &mut toml::Table, setting: &Setting) -> Result<(), &'static str> {
    let (last, parents) = setting.path.split_last().ok_or("empty key")?;
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or("a part of the key is a value, not a table")?;
    }
    t.insert(last.clone(), setting.value.clone());
    Ok(())
}

/// Lays `top` over `base`: tables merge key by key, any other value of `top` replaces the one in
/// `base`.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => overlay(b, t),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// A configuration file to start from: its text and where it came from.
pub struct Source<'a> {
    /// Path, for messages.
    pub path: &'a Path,
    /// The file's text.
    pub text: &'a str,
}

/// Computes the configuration to install: the current configuration, the boot-partition file
/// laid over it, and `settings` on top. `None` when there is nothing to apply. The result has
/// been checked by the same parser the services use.
pub fn plan(
    boot: Option<Source<'_>>,
    current: Option<Source<'_>>,
    settings: &[Setting],
    target: &Path,
) -> Result<Option<String>, FirstbootError> {
    if boot.is_none() && settings.is_empty() {
        return Ok(None);
    }
    let mut table = toml::Table::new();
    for src in [current, boot].into_iter().flatten() {
        // Check each file as written first, so an error names its own path and key.
        Config::parse(src.text, src.path)?;
        let layer = toml::from_str::<toml::Table>(src.text).map_err(|e| FirstbootError::Toml {
            path: src.path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        overlay(&mut table, layer);
    }
    for s in settings {
        apply(&mut table, s).map_err(|reason| FirstbootError::Cmdline {
            arg: format!("hyphae.{}", s.path.join(".")),
            reason,
        })?;
    }
    let text = format!(
        "# Installed by `hyphae firstboot` from the boot partition and the kernel command line.\n{}",
        toml::to_string(&table).map_err(|e| FirstbootError::Toml {
            path: target.to_path_buf(),
            message: e.to_string(),
        })?
    );
    Config::parse(&text, Path::new("kernel command line (hyphae.*=)"))?;
    Ok(Some(text))
}

fn read_optional(path: &Path) -> Result<Option<String>, FirstbootError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FirstbootError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Runs first boot.
pub fn run(paths: &NodePaths, args: &FirstbootArgs) -> anyhow::Result<ExitCode> {
    // The identity first: a node whose settings are refused still has its id.
    let key = NodeKey::load_or_create(&paths.identity_dir())?;
    let mut summary = vec![format!("node id {}", key.node_id())];
    println!("hyphae firstboot: {}", summary[0]);

    let mut boot = None;
    for p in &args.boot_config {
        let p = PathBuf::from(p);
        if let Some(text) = read_optional(&p)? {
            boot = Some((p, text));
            break;
        }
    }
    let cmdline = read_optional(&args.cmdline)?.unwrap_or_default();
    let settings = parse_cmdline(&cmdline)?;
    let current = read_optional(&paths.config)?;

    let planned = plan(
        boot.as_ref().map(|(path, text)| Source { path, text }),
        current.as_deref().map(|text| Source {
            path: &paths.config,
            text,
        }),
        &settings,
        &paths.config,
    )?;
    match planned {
        Some(text) => {
            // Readable by the services' user; written whole or not at all.
            if let Some(dir) = paths.config.parent() {
                if !dir.exists() {
                    fs::create_dir_all(dir).map_err(|source| FirstbootError::Write {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(
                        |source| FirstbootError::Write {
                            path: dir.to_path_buf(),
                            source,
                        },
                    )?;
                }
            }
            secret_file::write_atomic(&paths.config, text.as_bytes(), Visibility::Public).map_err(
                |source| FirstbootError::Write {
                    path: paths.config.clone(),
                    source,
                },
            )?;
            let from = match &boot {
                Some((p, _)) => format!("{}", p.display()),
                None => "the current configuration".to_string(),
            };
            let line = format!(
                "installed {} from {from} with {} kernel command-line setting(s)",
                paths.config.display(),
                settings.len()
            );
            println!("hyphae firstboot: {line}");
            summary.push(line);
        }
        None => {
            println!(
                "hyphae firstboot: no hyphae.toml on the boot partition, no hyphae.* settings"
            );
        }
    }

    let done = paths.state.join("firstboot.done");
    secret_file::write_atomic(
        &done,
        format!("{}\n", summary.join("\n")).as_bytes(),
        Visibility::Public,
    )
    .map_err(|source| FirstbootError::Write { path: done, source })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a>(path: &'a Path, text: &'a str) -> Option<Source<'a>> {
        Some(Source { path, text })
    }

    #[test]
    fn cmdline_settings_are_typed_and_others_ignored() {
        let s = parse_cmdline(
            "BOOT_IMAGE=/vmlinuz root=PARTUUID=x quiet hyphae.node.name=rack1-a \
             hyphae.ports.node=7450 hyphae.node.listen=0.0.0.0 \"hyphae.log.level=info,x=debug\"",
        )
        .unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].path, vec!["node", "name"]);
        assert_eq!(s[0].value, toml::Value::String("rack1-a".into()));
        assert_eq!(s[1].value, toml::Value::Integer(7450));
        assert_eq!(s[2].value, toml::Value::String("0.0.0.0".into()));
        assert_eq!(s[3].value, toml::Value::String("info,x=debug".into()));
    }

    #[test]
    fn malformed_cmdline_settings_are_refused() {
        for bad in [
            "hyphae.node",
            "hyphae.name=x",
            "hyphae..name=x",
            "hyphae.node.na me",
        ] {
            assert!(
                matches!(parse_cmdline(bad), Err(FirstbootError::Cmdline { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn nothing_to_apply_leaves_the_config_alone() {
        let cur = Path::new("/etc/hyphae/hyphae.toml");
        let planned = plan(None, src(cur, "[node]\nname = \"a\"\n"), &[], cur).unwrap();
        assert!(planned.is_none());
    }

    #[test]
    fn boot_file_overlays_config_and_cmdline_overrides_it() {
        let boot = Path::new("/boot/efi/hyphae.toml");
        let cur = Path::new("/etc/hyphae/hyphae.toml");
        let settings = parse_cmdline("hyphae.ports.node=7450").unwrap();
        let text = plan(
            src(boot, "[node]\nname = \"from-boot\"\n[ports]\nnode = 1\n"),
            src(
                cur,
                "[log]\nlevel = \"debug\"\n[ports]\nnode = 2\n[gateway]\nport = 443\n",
            ),
            &settings,
            cur,
        )
        .unwrap()
        .unwrap();
        let config = Config::parse(&text, cur).unwrap();
        assert_eq!(config.node.name.as_deref(), Some("from-boot"));
        assert_eq!(config.ports.node, 7450, "the command line wins");
        assert_eq!(config.gateway.port, 443, "the image's keys stay");
        assert_eq!(config.ports.node, 7450);
        assert_eq!(config.log.level, "debug", "the image's sections stay");
    }

    #[test]
    fn cmdline_alone_builds_on_the_current_config() {
        let cur = Path::new("/etc/hyphae/hyphae.toml");
        let settings = parse_cmdline("hyphae.node.name=n2").unwrap();
        let text = plan(None, src(cur, "[ports]\nnode = 7460\n"), &settings, cur)
            .unwrap()
            .unwrap();
        let config = Config::parse(&text, cur).unwrap();
        assert_eq!(config.node.name.as_deref(), Some("n2"));
        assert_eq!(config.ports.node, 7460);
    }

    #[test]
    fn invalid_settings_are_refused_with_the_key() {
        let boot = Path::new("/boot/efi/hyphae.toml");
        let err = plan(src(boot, "[ports]\nnoed = 1\n"), None, &[], boot)
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("ports.noed") && msg.contains("/boot/efi/hyphae.toml"),
            "{msg}"
        );

        let settings = parse_cmdline("hyphae.ports.node=notaport").unwrap();
        let err = plan(None, None, &settings, boot).err().unwrap();
        assert!(err.to_string().contains("ports.node"), "{err}");

        // A value where a table is needed.
        let settings = parse_cmdline("hyphae.node.name=x hyphae.node.name.first=y").unwrap();
        assert!(matches!(
            plan(None, None, &settings, boot),
            Err(FirstbootError::Cmdline { .. })
        ));
    }

    #[test]
    fn refused_settings_keep_identity_and_do_not_mark_done() {
        let dir = tempfile::tempdir().unwrap();
        let paths = NodePaths::resolve(Some(&dir.path().join("state")), None);
        let boot = dir.path().join("hyphae.toml");
        fs::write(&boot, "[node]\nnmae = \"typo\"\n").unwrap();
        let args = FirstbootArgs {
            boot_config: vec![boot.display().to_string()],
            cmdline: dir.path().join("no-cmdline"),
        };
        let err = run(&paths, &args).unwrap_err().to_string();
        assert!(err.contains("node.nmae"), "{err}");
        assert!(paths.identity_dir().join("node.key").exists());
        assert!(!paths.config.exists());
        assert!(!paths.state.join("firstboot.done").exists());
    }

    #[test]
    fn run_installs_config_creates_identity_and_marks_done() {
        let dir = tempfile::tempdir().unwrap();
        let paths = NodePaths::resolve(Some(&dir.path().join("state")), None);
        let boot = dir.path().join("hyphae.toml");
        fs::write(&boot, "[node]\nname = \"flashed\"\n").unwrap();
        let cmdline = dir.path().join("cmdline");
        fs::write(&cmdline, "quiet hyphae.ports.node=7455\n").unwrap();
        let args = FirstbootArgs {
            boot_config: vec![
                dir.path().join("absent.toml").display().to_string(),
                boot.display().to_string(),
            ],
            cmdline,
        };
        run(&paths, &args).unwrap();
        let config = Config::load(&paths.config, true).unwrap();
        assert_eq!(config.node.name.as_deref(), Some("flashed"));
        assert_eq!(config.ports.node, 7455);
        assert!(paths.identity_dir().join("node.key").exists());
        let done = fs::read_to_string(paths.state.join("firstboot.done")).unwrap();
        assert!(done.contains("node id"), "{done}");
        // Running again keeps the same identity.
        let id = NodeKey::load_or_create(&paths.identity_dir())
            .unwrap()
            .node_id();
        run(&paths, &args).unwrap();
        assert_eq!(
            NodeKey::load_or_create(&paths.identity_dir())
                .unwrap()
                .node_id(),
            id
        );
    }
}
