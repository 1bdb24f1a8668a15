//! Running external commands (`ip`, `tc`, the node binary) with errors that
//! say exactly what was run and what it printed, so a failing cluster test is
//! diagnosable from its output alone.

use std::fmt;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The captured result of a finished command: kept as text because every
/// command the harness runs (iproute2, the hyphae CLI) speaks text.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line as it was run, for error messages.
    pub command: String,
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything written to stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossily decoded as UTF-8).
    pub stderr: String,
}

impl CmdOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` when the process was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Turns a non-zero exit into an error carrying the command and its
    /// output, so `node.cli(..)?.check()?` reads naturally in tests.
    pub fn check(self) -> Result<Self> {
        if self.success() {
            Ok(self)
        } else {
            bail!("{self}")
        }
    }

    /// stdout with surrounding whitespace removed: most CLI verbs print one
    /// value (an id, an address) followed by a newline.
    pub fn stdout_trimmed(&self) -> &str {
        self.stdout.trim()
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` exited with {}", self.command, self.status)?;
        if !self.stdout.trim().is_empty() {
            write!(f, "\n--- stdout ---\n{}", self.stdout.trim_end())?;
        }
        if !self.stderr.trim().is_empty() {
            write!(f, "\n--- stderr ---\n{}", self.stderr.trim_end())?;
        }
        Ok(())
    }
}

/// Renders a command line for humans (program followed by its arguments).
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        let a = arg.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// Runs `cmd` to completion and captures its output; a non-zero exit is not
/// an error here (callers such as `ping` probes want to look at it).
pub fn output(cmd: &mut Command) -> Result<CmdOutput> {
    let command = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to spawn `{command}`"))?;
    Ok(CmdOutput {
        command,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Like [`output`], but kills the command (SIGKILL) and fails, with what it
/// printed so far, if it runs longer than `timeout`: a CLI verb that hangs
/// (e.g. talking to a SIGSTOPped peer) must not hang the whole test.
pub fn output_timeout(cmd: &mut Command, timeout: Duration) -> Result<CmdOutput> {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to spawn `{command}`"))?;
    // Drain both pipes concurrently so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for `{command}`"))?
        {
            break (status, false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child
                .wait()
                .with_context(|| format!("reaping `{command}`"))?;
            break (status, true);
        }
        thread::sleep(Duration::from_millis(10));
    };
    // A grandchild holding the pipes open must not block us forever either.
    let stdout = join_reader(out);
    let stderr = join_reader(err);
    let result = CmdOutput {
        command,
        status,
        stdout,
        stderr,
    };
    if timed_out {
        bail!("timed out after {timeout:?} and was killed: {result}");
    }
    Ok(result)
}

fn join_reader(h: thread::JoinHandle<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !h.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        "(output unavailable: a child process still holds the pipe)".to_string()
    }
}

/// Runs `cmd` and fails (with command, status and output) unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<CmdOutput> {
    output(cmd)?.check()
}

/// Runs `ip ARGS...` and requires success: every network change goes through
/// here so errors always name the exact iproute2 invocation.
pub fn ip<S: AsRef<str>>(args: &[S]) -> Result<CmdOutput> {
    run(Command::new("ip").args(args.iter().map(AsRef::as_ref)))
}

/// Runs `tc ARGS...` and requires success (see [`ip`]).
pub fn tc<S: AsRef<str>>(args: &[S]) -> Result<CmdOutput> {
    run(Command::new("tc").args(args.iter().map(AsRef::as_ref)))
}

/// Runs `program ARGS...` inside network namespace `ns` via
/// `ip netns exec` and captures its output without judging the exit code.
pub fn exec_in_netns<S: AsRef<str>>(ns: &str, program: &str, args: &[S]) -> Result<CmdOutput> {
    output(
        Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args.iter().map(AsRef::as_ref)),
    )
}
