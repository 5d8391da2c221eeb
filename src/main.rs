//! The `parloir` binary: command line and logging, then the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use parloir::config::{Flags, ServeLayer, SignalLayer, WorkerLayer};
use parloir::roles;

#[derive(Parser)]
#[command(
    name = "parloir",
    version,
    about = "WebRTC video calls: a selective forwarding unit"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Flags<ServeLayer>,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: signalling, web client, one media worker (the default).
    Serve(Flags<ServeLayer>),
    /// The control plane only: rooms, placement, admission, operators' API.
    Signal(Flags<SignalLayer>),
    /// The media plane only: joins the pool of a signal server (or of a Redis cluster).
    Worker(Flags<WorkerLayer>),
    /// Lists the workers of a signal server.
    Nodes(OperatorArgs),
    /// Drains a worker: no new rooms; it exits when its calls end.
    Drain {
        /// Worker id, as `parloir nodes` shows it.
        id: String,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Creates a priority room and prints its link: it may use the headroom
    /// kept between the two admission thresholds.
    PriorityRoom {
        /// Room name [default: a fresh, hard-to-guess one].
        #[arg(long)]
        room: Option<String>,
        /// Hours the link is valid [default: 24].
        #[arg(long)]
        hours: Option<f64>,
        /// Base of the printed link, when people reach the signal server at
        /// another URL (a reverse proxy) [default: --signal].
        #[arg(long)]
        public_url: Option<String>,
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Shows admission (thresholds, headroom, redirection), or turns the
    /// redirection of new rooms to partner instances on or off.
    Admission {
        /// Send every new ordinary room to the partner instances (on), or
        /// only those this cluster cannot take (off). Needs partners
        /// configured on the signal servers (--partner NAME=URL).
        #[arg(long, value_parser = ["on", "off"])]
        redirect: Option<String>,
        #[command(flatten)]
        op: OperatorArgs,
    },
}

#[derive(Args)]
struct OperatorArgs {
    /// URL of the signal server.
    #[arg(long, env = "PARLOIR_SIGNAL", default_value = "http://127.0.0.1:8080")]
    signal: String,
    /// Cluster secret.
    #[arg(long, env = "PARLOIR_SECRET")]
    secret: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    // Logs on stderr; stdout carries only what a person or script reads.
    // Colours for a person at a terminal; plain text into a file, a pipe
    // or journald (and wherever NO_COLOR is set).
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,str0m=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let open_files = parloir::net::raise_open_files_limit();
    tracing::debug!(open_files, "open files limit");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(a)) => serve(a).await,
            Some(Command::Signal(flags)) => {
                parloir::memory::spawn_trimmer();
                let reload =
                    access_reload(&flags, |c: &parloir::config::SignalConfig| c.access_rules());
                let running = roles::signal::start(flags.resolve()?, Some(reload)).await?;
                println!("Parloir signal server on {}", running.url());
                running.serve.await.context("HTTP server")?;
                Ok(())
            }
            Some(Command::Worker(flags)) => {
                parloir::memory::spawn_trimmer();
                let reload =
                    access_reload(&flags, |c: &parloir::config::WorkerConfig| c.access_rules());
                roles::worker::run(flags.resolve()?, Some(reload)).await?;
                Ok(())
            }
            Some(Command::Nodes(op)) => {
                let nodes = parloir::cli::nodes(&op.signal, &op.secret).await?;
                if op.json {
                    println!("{}", serde_json::to_string_pretty(&nodes)?);
                } else {
                    print!("{}", parloir::cli::table(&nodes));
                }
                Ok(())
            }
            Some(Command::Drain { id, op }) => {
                parloir::cli::drain(&op.signal, &op.secret, &id).await?;
                println!("{id} is draining: no new rooms; it exits when its calls end.");
                Ok(())
            }
            Some(Command::PriorityRoom {
                room,
                hours,
                public_url,
                op,
            }) => {
                let req = parloir::cli::PriorityRoomRequest { room, hours };
                let p = parloir::cli::priority_room(&op.signal, &op.secret, &req).await?;
                if op.json {
                    println!("{}", serde_json::to_string_pretty(&p)?);
                } else {
                    let base = public_url.as_deref().unwrap_or(&op.signal);
                    println!("{}{}", base.trim_end_matches('/'), p.path);
                }
                Ok(())
            }
            Some(Command::Admission { redirect, op }) => {
                let on = redirect.map(|r| r == "on");
                let a = parloir::cli::admission(&op.signal, &op.secret, on).await?;
                if op.json {
                    println!("{}", serde_json::to_string_pretty(&a)?);
                } else {
                    print!("{}", parloir::cli::admission_text(&a));
                }
                Ok(())
            }
        }
    })
}

/// Reads a role's access rules again as it was configured (flags,
/// environment, file), for SIGHUP.
fn access_reload<L, F>(flags: &Flags<L>, rules: F) -> parloir::access::Reload
where
    L: parloir::config::Layer + clap::Args + Clone + Send + Sync + 'static,
    F: Fn(&L::Resolved) -> Result<parloir::access::AccessRules, parloir::config::ConfigError>
        + Send
        + Sync
        + 'static,
{
    let flags = flags.clone();
    std::sync::Arc::new(move || {
        let config = flags.clone().resolve().map_err(|e| e.to_string())?;
        rules(&config).map_err(|e| e.to_string())
    })
}

async fn serve(flags: Flags<ServeLayer>) -> anyhow::Result<()> {
    parloir::memory::spawn_trimmer();
    let reload = access_reload(&flags, |c: &parloir::config::ServeConfig| c.access_rules());
    let (running, media) = roles::serve::start(flags.resolve()?, Some(reload)).await?;
    tracing::info!(%media, "Parloir is running");
    println!(
        "Parloir is running. Open {} in your browser.",
        running.url()
    );
    running.serve.await.context("HTTP server")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Option<Command> {
        Cli::try_parse_from(std::iter::once("parloir").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    // The command lines of tests/, loadtest/ and docker/ keep parsing into
    // the flag layer (the environment is not read for flags that are given).

    #[test]
    fn serve_flags() {
        let cli = Cli::try_parse_from(["parloir", "--http", "0.0.0.0:8080"]).unwrap();
        assert_eq!(cli.serve.layer.http, Some("0.0.0.0:8080".parse().unwrap()));
        let Some(Command::Serve(f)) = parse(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--media",
            "127.0.0.1:0",
            "--max-participants",
            "1000",
            "--capacity-pps",
            "10000000",
            "--config",
            "config/serve.toml",
        ]) else {
            panic!("not serve")
        };
        assert_eq!(f.layer.max_participants, Some(1000));
        assert_eq!(f.layer.capacity_pps, Some(10_000_000.0));
        assert_eq!(f.config, Some("config/serve.toml".into()));
    }

    #[test]
    fn signal_flags() {
        let Some(Command::Signal(f)) = parse(&[
            "signal",
            "--http=0.0.0.0:8080",
            "--secret",
            "s",
            "--redis",
            "redis://redis:6379",
            "--id=signal-1",
        ]) else {
            panic!("not signal")
        };
        assert_eq!(f.layer.http, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(f.layer.secret.as_deref(), Some("s"));
        assert_eq!(f.layer.redis.as_deref(), Some("redis://redis:6379"));
        assert_eq!(f.layer.id.as_deref(), Some("signal-1"));
    }

    #[test]
    fn worker_flags() {
        let Some(Command::Worker(f)) = parse(&[
            "worker",
            "--signal=http://signal:8080",
            "--secret",
            "s",
            "--redis=redis://redis:6379",
            "--id=worker-1",
            "--control-url=http://worker-1:9100",
            "--http=0.0.0.0:9100",
            "--media=0.0.0.0:10001",
            "--announce=127.0.0.1",
            "--capacity-pps",
            "3000",
            "--drain-timeout",
            "120",
        ]) else {
            panic!("not worker")
        };
        let l = &f.layer;
        assert_eq!(l.signal.as_deref(), Some("http://signal:8080"));
        assert_eq!(l.control_url.as_deref(), Some("http://worker-1:9100"));
        assert_eq!(l.media, Some("0.0.0.0:10001".parse().unwrap()));
        assert_eq!(l.announce, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(l.capacity_pps, Some(3000.0));
        assert_eq!(l.drain_timeout, Some(120));
    }
}
