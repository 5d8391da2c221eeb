//! A participant that sends its own valid binding requests from a new
//! source port each time (`parloir-loadtest flood-ports`), beside a
//! measured meeting, on a real server on loopback. Each new address used
//! to become a candidate and a pair in the worker's ICE agent, never
//! forgotten (2,000 ports: the meeting lost 36 %, p99 6.5 s); now an agent
//! takes at most 16 per ICE generation.
//!
//! And a participant that sends its own valid binding requests with the
//! source address of the others' media (`flood-ports --spoof`, a raw
//! socket): each used to move that address, and its owner's media, to the
//! attacker's connection (four a second cost a meeting 62.5 %).
//!
//! And one address that holds as many ICE-TCP connections to the media
//! port as it can: 5,050 used to take every slot, and a meeting that
//! could only use TCP lost everything.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{
    attack_beside_a_meeting, closed_by_server, figure, measured_meeting, meeting_whole, Server,
};

/// Both attacks, one after the other, on one server.
#[test]
fn one_participant_neither_grows_the_ice_agent_nor_takes_others_media() {
    let server = Server::start();
    thousands_of_source_ports_leave_the_meeting_whole(&server);
    forged_sources_take_nobody_elses_media(&server);
    ice_tcp_connections_from_one_address_leave_the_others_theirs(&server);
}

fn thousands_of_source_ports_leave_the_meeting_whole(server: &Server) {
    let report = attack_beside_a_meeting(
        &server.http,
        &[
            "flood-ports",
            "--client-ip",
            "127.0.0.2",
            "--rate",
            "300",
            "--duration",
            "22",
        ],
    );
    assert!(report.contains("own call connected: true"), "{report}");
    // Some 6,000 ports: the worker answered on at most 16 of them (the
    // system hands a closed port out again, and a port already taken is
    // answered again).
    let answered = figure(&report, " on ");
    assert!(answered <= 16, "answered on {answered} ports");
}

fn forged_sources_take_nobody_elses_media(server: &Server) {
    let report = attack_beside_a_meeting(
        &server.http,
        &["flood-ports", "--spoof", "--rate", "4", "--duration", "22"],
    );
    // Its own call stays up: requests it signed from others' addresses
    // neither move its media nor cut it.
    assert!(report.contains("own call connected: true"), "{report}");
    // The four of the meeting (and whatever else listens on loopback)
    // were impersonated, each four times a second.
    let forged = figure(&report, "from each of ");
    assert!(forged >= 4, "{report}");
}

/// One address (127.0.0.2) opens 5,050 ICE-TCP connections to the media
/// port and keeps opening more (up to 1,000 a second) as the server
/// closes them (the silent after 10 s, those over its share at once),
/// while a meeting over ICE-TCP from another address (127.0.0.1) is
/// measured: the meeting gets its connections and stays whole, and the
/// attacker never holds more than its address's share for longer than
/// it takes the server to see a connection.
fn ice_tcp_connections_from_one_address_leave_the_others_theirs(server: &Server) {
    parloir::net::raise_open_files_limit();
    let media = SocketAddr::from(([127, 0, 0, 1], server.media_port));
    let share = parloir::worker::ice_tcp_max_per_address();
    let connect = || -> Option<(TcpStream, Instant)> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        s.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into()).ok()?;
        s.connect_timeout(&media.into(), Duration::from_secs(1))
            .ok()?;
        let s: TcpStream = s.into();
        s.set_nonblocking(true).ok()?;
        Some((s, Instant::now()))
    };
    const HELD: usize = 5_050;
    let mut open: Vec<_> = (0..HELD).filter_map(|_| connect()).collect();
    let mut opened = open.len();
    let mut most_held = 0;
    let mut meeting = Some(measured_meeting(&server.http, &["--tcp"]));
    while let Some(m) = meeting.as_mut() {
        std::thread::sleep(Duration::from_millis(100));
        open.retain_mut(|(s, _)| !closed_by_server(s));
        // Held: open for a second, long past the server's accept.
        let held = open
            .iter()
            .filter(|(_, at)| at.elapsed() >= Duration::from_secs(1))
            .count();
        most_held = most_held.max(held);
        if m.try_wait().expect("the meeting").is_some() {
            meeting_whole(meeting.take().unwrap());
            break;
        }
        for _ in 0..100.min(HELD - open.len()) {
            let Some(c) = connect() else { break };
            open.push(c);
            opened += 1;
        }
    }
    eprintln!(
        "ICE-TCP: {opened} connections opened from one address, at most {most_held} held \
         at once (its share: {share})"
    );
    assert!(opened > HELD, "the attacker kept opening: {opened}");
    assert!(most_held <= share, "{most_held} held, the share is {share}");
}
