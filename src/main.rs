//! `hyphae`: one multi-call binary. `hyphae <service>` runs a service, `hyphae node` runs every
//! service of a node in one process, and the other verbs are the administrator's CLI.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hyphae_core::config::{Config, LogSection};
use hyphae_core::paths::NodePaths;

/// Hyphae: a self-healing mesh of small machines that stores files, runs compute jobs and keeps
/// virtual machines alive.
#[derive(Debug, Parser)]
#[command(
    name = "hyphae",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "Start a mesh:   hyphae init && hyphae node\n\
Check a host:   hyphae doctor\n\
Several nodes on one machine: give each its own --state-dir.")]
struct Cli {
    /// Keep this node's state in DIR (sockets in DIR/run, config DIR/hyphae.toml) instead of
    /// /var/lib/hyphae, /run/hyphae and /etc/hyphae/hyphae.toml.
    #[arg(long, global = true, value_name = "DIR", env = "HYPHAE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Read the configuration from FILE (it must exist).
    #[arg(long, global = true, value_name = "FILE", env = "HYPHAE_CONFIG")]
    config: Option<PathBuf>,
    /// Log more (repeat for even more); logs go to stderr, or journald under systemd.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new mesh with this node as its first member; prints the mesh id.
    Init(commands::init::InitArgs),
    /// Run every service of this node in one process (development, `make run`, tests).
    Node,
    /// Run only the node agent (ping endpoint on udp/7440, node.sock): the systemd unit's verb.
    Agent,
    /// Show this node's status (from its running services).
    Status(commands::status::StatusArgs),
    /// Check that another member answers over mutual-TLS QUIC.
    Ping(commands::ping::PingArgs),
    /// Offline enrolment: certificate requests, signing and installation.
    #[command(subcommand)]
    Cert(commands::cert::CertCommand),
    /// The mesh certificate authority.
    #[command(subcommand)]
    Ca(commands::cert::CaCommand),
    /// Check and explain what this host offers (io_uring, KVM, Vulkan, cgroup v2, IPv6, disk).
    Doctor(commands::doctor::DoctorArgs),
    /// First boot of a flashed node: install boot-partition and kernel command-line settings,
    /// create the node identity (run by hyphae-firstboot.service).
    Firstboot(commands::firstboot::FirstbootArgs),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = NodePaths::resolve(cli.state_dir.as_deref(), cli.config.as_deref());
    match run(cli, paths) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hyphae: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, paths: NodePaths) -> anyhow::Result<ExitCode> {
    // Verbs that need no configuration.
    match &cli.command {
        Command::Version => {
            println!(
                "hyphae {} ({} {})",
                hyphae_core::VERSION,
                std::env::consts::ARCH,
                std::env::consts::OS
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Doctor(args) => return commands::doctor::run(&paths, args),
        // First boot replaces the configuration, so a broken one must not stop it.
        Command::Firstboot(args) => return commands::firstboot::run(&paths, args),
        _ => {}
    }
    let config = Config::load(&paths.config, paths.config_explicit)?;
    let log = match (&cli.command, cli.verbose) {
        (Command::Node, 0) => config.log.clone(),
        (Command::Node, 1) => LogSection {
            level: "debug".into(),
            ..config.log.clone()
        },
        (_, 0) => LogSection {
            level: "warn".into(),
            ..config.log.clone()
        },
        (_, 1) => LogSection {
            level: "info".into(),
            ..config.log.clone()
        },
        (_, _) => LogSection {
            level: "debug".into(),
            ..config.log.clone()
        },
    };
    hyphae_core::telemetry::init(&log);
    match cli.command {
        Command::Init(args) => commands::init::run(&paths, &config, &args),
        Command::Node => commands::node::run(paths, config, commands::node::Services::All),
        Command::Agent => commands::node::run(paths, config, commands::node::Services::Agent),
        Command::Status(args) => commands::status::run(&paths, &args),
        Command::Ping(args) => commands::ping::run(&paths, &config, &args),
        Command::Cert(cmd) => commands::cert::run(&paths, cmd),
        Command::Ca(cmd) => commands::cert::run_ca(&paths, cmd),
        Command::Version | Command::Doctor(_) | Command::Firstboot(_) => {
            unreachable!("handled above")
        }
    }
}
