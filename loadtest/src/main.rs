//! `parloir-loadtest`: synthetic participants for Parloir (and a bare UDP
//! relay to compare with), the benchmark that runs them, and the surge.

mod bench;
mod dtls;
mod flood;
mod flood_ports;
mod janus_client;
mod link;
mod loss;
mod media;
mod parloir_client;
mod participant;
mod plot;
mod relay;
mod run;
mod stats;
mod surge;
mod webrtc_client;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use run::{Scenario, Target};

#[derive(Parser)]
#[command(
    name = "parloir-loadtest",
    about = "Load generator and benchmark for Parloir"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One load run against a target; prints progress and a summary.
    Run(RunArgs),
    /// The bare UDP relay (the machine's limit for a load).
    Relay {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Parloir against the UDP relay (and Janus where installed), same load.
    Bench(bench::BenchArgs),
    /// An attacker's signalling load on a Parloir on this machine: offers
    /// of thousands of m-lines, as fast as they are answered.
    FloodOffers(flood::FloodArgs),
    /// An attacker's load on a worker's ICE agent, from a Parloir call on
    /// this machine: its own binding requests from a new port each time.
    FloodPorts(flood_ports::FloodPortsArgs),
    /// A surge on a cluster of this machine (Redis, a signal server, two
    /// workers, a third one midway): writes loadtest/results/surge.*.
    Surge(surge::SurgeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// One publisher, everyone else subscribes.
    Fanout,
    /// Everyone publishes and subscribes.
    Meeting,
    /// Five audio-only speakers per room.
    Audio,
}

#[derive(Args)]
struct RunArgs {
    /// Parloir URL (http://HOST:PORT of `serve` or `signal`).
    #[arg(long, conflicts_with = "relay")]
    target: Option<String>,
    /// Address of a `parloir-loadtest relay`.
    #[arg(long)]
    relay: Option<SocketAddr>,
    /// Janus HTTP API (http://HOST:8088), videoroom; fan-out only.
    #[arg(long)]
    janus: Option<String>,
    #[arg(long, value_enum, default_value = "meeting")]
    preset: Preset,
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    rooms: u32,
    /// Participants per room.
    #[arg(long, default_value_t = 4)]
    participants: u32,
    /// Publishers per room [default: from the preset].
    #[arg(long)]
    publishers: Option<u32>,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds between the last join and the measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Participants joined per second.
    #[arg(long, default_value_t = 50.0)]
    ramp: f64,
    /// Video pacing rate over the bitrate, as a browser's pacer (2.5 in
    /// libwebrtc); 0 sends each frame in one burst.
    #[arg(long, default_value_t = 2.5)]
    pacing: f64,
    /// Process id of the target, to measure its CPU and memory.
    #[arg(long)]
    target_pid: Option<u32>,
    /// Address the participants' sockets bind to.
    #[arg(long, default_value = "127.0.0.1")]
    client_ip: IpAddr,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Join this room (`NAME-i` for several) instead of random ones: to
    /// fill a room that browsers are in.
    #[arg(long)]
    room: Option<String>,
    /// Publishers speak in turns of this many seconds (audio level), each
    /// printing `speaking load-INDEX` on standard error as its turn starts.
    #[arg(long)]
    speaker_turn: Option<f64>,
    /// Offer ICE-TCP candidates only (Parloir), as a browser on a network
    /// without UDP.
    #[arg(long)]
    tcp: bool,
}

fn scenario(a: &RunArgs) -> Scenario {
    let mut s = match a.preset {
        Preset::Fanout => Scenario::fanout(a.participants),
        Preset::Meeting => Scenario::meeting(a.rooms, a.participants),
        Preset::Audio => Scenario::audio(a.rooms),
    };
    s.rooms = a.rooms;
    if !matches!(a.preset, Preset::Audio) {
        s.participants = a.participants;
    }
    if let Some(p) = a.publishers {
        s.publishers = p.min(s.participants);
    }
    s.duration = Duration::from_secs_f64(a.duration);
    s.warmup = Duration::from_secs_f64(a.warmup);
    s.ramp_per_s = a.ramp;
    s.pacing = a.pacing;
    s.room = a.room.clone();
    s.speaker_turn = a.speaker_turn.map(Duration::from_secs_f64);
    s.tcp = a.tcp;
    if a.tcp {
        s.name.push_str("-tcp");
    }
    s
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Relay { listen } => {
            relay::serve(listen)?;
            Ok(())
        }
        Command::Run(a) => {
            let target = match (&a.target, a.relay, &a.janus) {
                (Some(url), _, _) => Target::Parloir(url.trim_end_matches('/').to_string()),
                (None, Some(addr), _) => Target::Relay(addr),
                (None, None, Some(url)) => {
                    Target::Janus(url.trim_end_matches('/').to_string(), Default::default())
                }
                _ => anyhow::bail!("give --target URL, --relay ADDR or --janus URL"),
            };
            let sc = scenario(&a);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let summary = rt.block_on(run::run(target, &sc, a.target_pid, a.client_ip, !a.json));
            if a.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                print!("{}", run::table(std::slice::from_ref(&summary)));
            }
            Ok(())
        }
        Command::Bench(b) => bench::main(b),
        Command::FloodOffers(f) => flood::main(f),
        Command::FloodPorts(f) => flood_ports::main(f),
        Command::Surge(s) => surge::main(s),
    }
}
