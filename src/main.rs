//! The `parloir` binary: command line and logging, then the library.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use parloir::config::Partial;

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
}

fn main() -> anyhow::Result<()> {
    // Logs on stderr; stdout carries only the URL line.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,str0m=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(a)) => a,
        None => cli.serve,
    };
    let file = match &args.config {
        Some(path) => Partial::from_file(path)?,
        None => Partial::default(),
    };
    let config = Partial {
        http: args.http,
        media: args.media,
        announce: args.announce,
        max_participants: args.max_participants,
    }
    .resolve(file)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let running = parloir::serve::start(config).await?;
        let url_host = match running.http.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            ip => ip.to_string(),
        };
        tracing::info!(media = %running.media, "Parloir is running");
        println!(
            "Parloir is running. Open http://{url_host}:{}/ in your browser.",
            running.http.port()
        );
        running.wait().await.context("HTTP server")?;
        anyhow::Ok(())
    })
}
