//! The `parloir` binary: command line and logging, then the library.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use parloir::config::{Flags, ServeLayer};
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
    Signal(SignalArgs),
    /// The media plane only: joins the pool of a signal server (or of a Redis cluster).
    Worker(WorkerArgs),
    /// Lists the workers of a signal server.
    Nodes(OperatorArgs),
    /// Drains a worker: no new rooms; it exits when its calls end.
    Drain {
        /// Worker id, as `parloir nodes` shows it.
        id: String,
        #[command(flatten)]
        op: OperatorArgs,
    },
}

#[derive(Args)]
struct SignalArgs {
    /// HTTP and WebSocket address.
    #[arg(long, env = "PARLOIR_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Cluster secret shared with the workers and operators.
    #[arg(long, env = "PARLOIR_SECRET")]
    secret: String,
    /// Redis URL, to share workers and rooms with other signal servers.
    #[arg(long, env = "PARLOIR_REDIS")]
    redis: Option<String>,
    /// Name of this signal server in metrics [default: signal-PORT].
    #[arg(long, env = "PARLOIR_ID")]
    id: Option<String>,
    #[arg(long, env = "PARLOIR_MAX_PARTICIPANTS", default_value_t = parloir::config::DEFAULT_MAX_PARTICIPANTS)]
    max_participants: usize,
    #[arg(long, env = "PARLOIR_ADMISSION_THRESHOLD", default_value_t = parloir::config::DEFAULT_ADMISSION_THRESHOLD)]
    admission_threshold: f64,
}

#[derive(Args)]
struct WorkerArgs {
    /// URL of the signal server (http://HOST:PORT).
    #[arg(long, env = "PARLOIR_SIGNAL")]
    signal: String,
    /// Cluster secret.
    #[arg(long, env = "PARLOIR_SECRET")]
    secret: String,
    /// The UDP address all media uses.
    #[arg(long, env = "PARLOIR_MEDIA", default_value = "0.0.0.0:10000")]
    media: SocketAddr,
    /// Control channel and /metrics address.
    #[arg(long, env = "PARLOIR_HTTP", default_value = "0.0.0.0:9100")]
    http: SocketAddr,
    /// Redis URL: report there, for every signal server sharing it.
    #[arg(long, env = "PARLOIR_REDIS")]
    redis: Option<String>,
    /// Address put in ICE candidates and given to signal servers.
    #[arg(long, env = "PARLOIR_ANNOUNCE")]
    announce: Option<IpAddr>,
    /// URL signal servers reach this worker's control channel at
    /// [default: http://ANNOUNCE:HTTP_PORT].
    #[arg(long, env = "PARLOIR_CONTROL_URL")]
    control_url: Option<String>,
    /// Node id [default: MEDIA_IP-MEDIA_PORT].
    #[arg(long, env = "PARLOIR_ID")]
    id: Option<String>,
    /// Packets per second (in + out) this worker is sized for.
    #[arg(long, env = "PARLOIR_CAPACITY_PPS", default_value_t = parloir::config::DEFAULT_CAPACITY_PPS)]
    capacity_pps: f64,
    /// Seconds a draining worker keeps its calls before moving them elsewhere.
    #[arg(long, env = "PARLOIR_DRAIN_TIMEOUT", default_value_t = 600)]
    drain_timeout: u64,
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,str0m=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(a)) => serve(a).await,
            Some(Command::Signal(a)) => {
                let port = a.http.port();
                let running = roles::signal::start(roles::signal::SignalArgs {
                    http: a.http,
                    secret: a.secret,
                    redis: a.redis,
                    id: a.id.unwrap_or_else(|| format!("signal-{port}")),
                    max_participants: a.max_participants,
                    admission_threshold: a.admission_threshold,
                })
                .await?;
                println!(
                    "Parloir signal server on http://{}/",
                    url_host(running.http)
                );
                running.serve.await.context("HTTP server")?;
                Ok(())
            }
            Some(Command::Worker(a)) => {
                roles::worker::run(roles::worker::WorkerArgs {
                    signal: a.signal,
                    secret: a.secret,
                    media: a.media,
                    http: a.http,
                    redis: a.redis,
                    announce: a.announce,
                    control_url: a.control_url,
                    id: a.id,
                    capacity_pps: a.capacity_pps,
                    drain_timeout: Duration::from_secs(a.drain_timeout),
                })
                .await?;
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
        }
    })
}

fn url_host(addr: SocketAddr) -> String {
    match addr.ip() {
        ip if ip.is_unspecified() => format!("127.0.0.1:{}", addr.port()),
        _ => addr.to_string(),
    }
}

async fn serve(flags: Flags<ServeLayer>) -> anyhow::Result<()> {
    let (running, media) = roles::serve::start(flags.resolve()?).await?;
    tracing::info!(%media, "Parloir is running");
    println!(
        "Parloir is running. Open http://{}/ in your browser.",
        url_host(running.http)
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
}
