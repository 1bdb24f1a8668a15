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
    Node(commands::node::NodeArgs),
    /// Run only the node agent (ping endpoint on udp/7440, node.sock): the systemd unit's verb.
    Agent,
    /// Run only the coordinator (Raft on udp/7441, admission on udp/7445, coordinator.sock).
    Coordinator(commands::node::NodeArgs),
    /// Run only discovery: the UDP beacon on udp/41234, mDNS, candidates (beacon.sock).
    Beacon,
    /// List the mesh's nodes with their roles (queen, prince, bee) and status.
    Nodes(commands::nodes::NodesArgs),
    /// Admit a node that asked to join without a token.
    Admit(commands::admit::AdmitArgs),
    /// Revoke a node: every member refuses it from then on.
    Revoke(commands::revoke::RevokeArgs),
    /// Join tokens.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Leave the mesh cleanly.
    Leave,
    /// The coordinator's key space (operators, tests).
    #[command(subcommand)]
    Kv(commands::kv::KvCommand),
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
    /// Run only the gateway (HTTPS + HTTP/3 on [gateway] port, DNS on dns_port, gateway.sock).
    Gateway,
    /// Set the admin password of the dashboard and API (read from standard input).
    Passwd(commands::passwd::PasswdArgs),
    /// API tokens for scripts (`Authorization: Bearer ...`).
    #[command(subcommand, name = "api-token")]
    ApiToken(commands::api_token::ApiTokenCommand),
    /// Names of the mesh namespace (NAME.hyphae.internal).
    #[command(subcommand)]
    Name(commands::name::NameCommand),
    /// Print the version.
    Version,
    /// Run only the chunkstore (shards on udp/7442, chunkstore.sock).
    Chunkstore(commands::node::NodeArgs),
    /// Store a local file (or `-` for stdin) in the mesh.
    Put(commands::files::PutArgs),
    /// Fetch a file from the mesh to a local file (or `-` for stdout).
    Get(commands::files::GetArgs),
    /// List the mesh's files.
    Ls(commands::files::LsArgs),
    /// Delete a file from the mesh.
    Rm(commands::files::PathArgs),
    /// Where a file's chunks and shards are, and whether each is present.
    Stat(commands::files::PathArgs),
    /// Re-verify this node's shards (`--now`).
    Scrub(commands::files::ScrubArgs),
    /// Run only the compute worker (tiles on udp/7443, compute.sock).
    Compute(commands::node::NodeArgs),
    /// Compute jobs: GEMM of matrices stored in the mesh (docs/compute.md).
    #[command(subcommand)]
    Job(commands::job::JobCommand),
    /// Which nodes share an asset (`[share] dirs`), by `--name` or `--hash`.
    QueryAsset(commands::assets::QueryArgs),
    /// Shared assets: fetch one by hash (verified), rescan this node's.
    #[command(subcommand)]
    Asset(commands::assets::AssetCommand),
    /// Run only the memory replicator (VM epochs on udp/7444, memrep.sock).
    Memrep(commands::node::NodeArgs),
    /// Replicated VMs (create, list, status, console, stop, delete, resume).
    #[command(subcommand)]
    Vm(commands::vm::VmCommand),
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
    // Verbs that serve log at the configured level; admin verbs stay quiet unless -v.
    let serves = matches!(
        cli.command,
        Command::Node(_)
            | Command::Agent
            | Command::Coordinator(_)
            | Command::Beacon
            | Command::Chunkstore(_)
            | Command::Memrep(_)
            | Command::Gateway
            | Command::Compute(_)
    );
    let verbose = cli.verbose;
    // Loads and validates the configuration, and starts logging; only verbs that need it call it.
    let configure = || -> anyhow::Result<Config> {
        let config = Config::load(&paths.config, paths.config_explicit)?;
        let level = match (serves, verbose) {
            (true, 0) => config.log.level.clone(),
            (false, 0) => "warn".to_string(),
            (false, 1) => "info".to_string(),
            _ => "debug".to_string(),
        };
        hyphae_core::telemetry::init(&LogSection {
            level,
            ..config.log.clone()
        });
        Ok(config)
    };
    use commands::node::{NodeArgs, Services};
    match cli.command {
        Command::Version => {
            println!(
                "hyphae {} ({} {})",
                hyphae_core::VERSION,
                std::env::consts::ARCH,
                std::env::consts::OS
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(args) => commands::doctor::run(&paths, &args),
        // First boot replaces the configuration, so a broken one must not stop it.
        Command::Firstboot(args) => commands::firstboot::run(&paths, &args),
        Command::Init(args) => commands::init::run(&paths, &configure()?, &args),
        Command::Node(args) => {
            commands::node::run(paths.clone(), configure()?, &args, Services::All)
        }
        Command::Agent => commands::node::run(
            paths.clone(),
            configure()?,
            &NodeArgs::default(),
            Services::Agent,
        ),
        Command::Coordinator(args) => {
            commands::node::run(paths.clone(), configure()?, &args, Services::Coordinator)
        }
        Command::Beacon => commands::node::run(
            paths.clone(),
            configure()?,
            &NodeArgs::default(),
            Services::Beacon,
        ),
        Command::Gateway => commands::node::run(
            paths.clone(),
            configure()?,
            &NodeArgs::default(),
            Services::Gateway,
        ),
        Command::Ping(args) => commands::ping::run(&paths, &configure()?, &args),
        Command::Chunkstore(args) => {
            commands::node::run(paths.clone(), configure()?, &args, Services::Chunkstore)
        }
        Command::Compute(args) => {
            commands::node::run(paths.clone(), configure()?, &args, Services::Compute)
        }
        Command::Memrep(args) => {
            commands::node::run(paths.clone(), configure()?, &args, Services::Memrep)
        }
        verb => {
            // The remaining verbs talk to the running node or to files; they still refuse a
            // broken configuration, so a typo is caught before the node restarts on it.
            configure()?;
            match verb {
                Command::Nodes(args) => commands::nodes::run(&paths, &args),
                Command::Admit(args) => commands::admit::run(&paths, &args),
                Command::Revoke(args) => commands::revoke::run(&paths, &args),
                Command::Token(cmd) => commands::token::run(&paths, &cmd),
                Command::Leave => commands::leave::run(&paths),
                Command::Kv(cmd) => commands::kv::run(&paths, &cmd),
                Command::Status(args) => commands::status::run(&paths, &args),
                Command::Cert(cmd) => commands::cert::run(&paths, cmd),
                Command::Ca(cmd) => commands::cert::run_ca(&paths, cmd),
                Command::Passwd(args) => commands::passwd::run(&paths, &args),
                Command::ApiToken(cmd) => commands::api_token::run(&paths, &cmd),
                Command::Name(cmd) => commands::name::run(&paths, &cmd),
                Command::Put(args) => commands::files::put(&paths, &args),
                Command::Get(args) => commands::files::get(&paths, &args),
                Command::Ls(args) => commands::files::ls(&paths, &args),
                Command::Rm(args) => commands::files::rm(&paths, &args),
                Command::Stat(args) => commands::files::stat(&paths, &args),
                Command::Scrub(args) => commands::files::scrub(&paths, &args),
                Command::Job(cmd) => commands::job::run(&paths, &cmd),
                Command::QueryAsset(args) => commands::assets::query(&paths, &args),
                Command::Asset(cmd) => commands::assets::run(&paths, &cmd),
                Command::Vm(cmd) => commands::vm::run(&paths, cmd),
                other => anyhow::bail!("internal: verb {other:?} was not dispatched"),
            }
        }
    }
}
