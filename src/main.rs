//! The `parloir` binary: command line and logging, then the library.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use parloir::config::Partial;
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
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: signalling, web client, one media worker (the default).
    Serve(ServeArgs),
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

#[derive(Args, Default)]
struct ServeArgs {
    /// TOML configuration file (see config/parloir.toml).
    #[arg(long, env = "PARLOIR_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP and WebSocket address [default: 127.0.0.1:8080].
    #[arg(long, env = "PARLOIR_HTTP")]
    http: Option<SocketAddr>,
    /// The UDP address all media uses [default: 0.0.0.0:10000].
    #[arg(long, env = "PARLOIR_MEDIA")]
    media: Option<SocketAddr>,
    /// Address put in ICE candidates when it differs from the bound one (NAT, containers).
    #[arg(long, env = "PARLOIR_ANNOUNCE")]
    announce: Option<IpAddr>,
    /// Participants per room [default: 12].
    #[arg(long, env = "PARLOIR_MAX_PARTICIPANTS")]
    max_participants: Option<usize>,
    /// Enables the operators' API with this secret.
    #[arg(long, env = "PARLOIR_SECRET")]
    secret: Option<String>,
    /// Packets per second (in + out) the worker is sized for [default: 50000].
    #[arg(long, env = "PARLOIR_CAPACITY_PPS")]
    capacity_pps: Option<f64>,
    /// Refuse new rooms when every worker's stress is at or above this [default: 0.85].
    #[arg(long, env = "PARLOIR_ADMISSION_THRESHOLD")]
    admission_threshold: Option<f64>,
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => Partial::from_file(path)?,
        None => Partial::default(),
    };
    let config = Partial {
        http: args.http,
        media: args.media,
        announce: args.announce,
        max_participants: args.max_participants,
        secret: args.secret,
        capacity_pps: args.capacity_pps,
        admission_threshold: args.admission_threshold,
    }
    .resolve(file)?;
    let (running, media) = roles::serve::start(config).await?;
    tracing::info!(%media, "Parloir is running");
    println!(
        "Parloir is running. Open http://{}/ in your browser.",
        url_host(running.http)
    );
    running.serve.await.context("HTTP server")?;
    Ok(())
}
