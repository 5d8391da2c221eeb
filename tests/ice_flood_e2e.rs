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

mod common;

use common::{attack_beside_a_meeting, figure, Server};

/// Both attacks, one after the other, on one server.
#[test]
fn one_participant_neither_grows_the_ice_agent_nor_takes_others_media() {
    let server = Server::start();
    thousands_of_source_ports_leave_the_meeting_whole(&server);
    forged_sources_take_nobody_elses_media(&server);
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
