//! Answers to offers the server never made, large and many
//! (`parloir-loadtest flood-offers --answers`), beside a measured meeting
//! on a real server on loopback. Answers used to be parsed on the media
//! thread before their offer id was checked: one of 258 KB cost 16 ms, and
//! eight sockets sending ten a second cost a meeting 4.3 % of its packets
//! with a p99 of 4.1 s. Now an answer is matched to the offer in flight
//! first, and one to nothing costs a count of its m-lines.
//!
//! (Answers of more than 64 m-lines are refused unparsed, whatever they
//! answer: the attacker's answers here stay within that bound and are
//! filled up to the message limit with attribute lines.)

mod common;

use common::{attack_beside_a_meeting, figure, Server};

#[test]
fn answers_to_nothing_leave_the_meeting_whole() {
    let server = Server::start();
    let report = attack_beside_a_meeting(
        &server.http,
        &[
            "flood-offers",
            "--answers",
            "10",
            "--sockets",
            "8",
            "--mlines",
            "64",
            "--duration",
            "21",
        ],
    );
    assert!(!report.contains("socket failed"), "{report}");
    // About 1,600 answers of a quarter of a megabyte each were sent, each
    // within the server's bound on m-lines, so that only its offer id
    // tells it apart from one the server would parse. None is refused:
    // an answer to nothing is dropped without a word.
    let sent = figure(&report, "answers sent ");
    assert!(sent >= 1000, "only {sent} answers sent: {report}");
    assert_eq!(figure(&report, "refused "), 0, "{report}");
}
