//! Self-signed certificates for the tests that serve HTTPS.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed certificate for 127.0.0.1 (and localhost), written to
/// `cert`/`key`; returns its SHA-256 fingerprint.
pub fn make_certificate(cert: &Path, key: &Path, name: &str) -> String {
    self_signed(
        cert,
        key,
        name,
        &["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
    );
    fingerprint_of_file(cert)
}

/// A self-signed certificate `name` (a CA's, unless `extra` says more).
fn self_signed(cert: &Path, key: &Path, name: &str, extra: &[&str]) {
    let subject = format!("/CN={name}");
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &subject,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-keyout", path(key), "-out", path(cert)]);
    openssl(&args);
}

pub fn fingerprint_of_file(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl x509");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs openssl with `args`, panicking with its output if it fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `name` in `dir`: its certificate and key.
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    self_signed(&cert, &key, name, &[]);
    (cert, key)
}

/// A server certificate `name` for the address `ip`, signed by `ca` (from
/// [`make_ca`]), in `dir`: its certificate and key.
pub fn make_signed(
    dir: &Path,
    ca: &(PathBuf, PathBuf),
    name: &str,
    ip: &str,
) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    let (csr, ext) = (
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.ext")),
    );
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        path(&key),
        "-out",
        path(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        path(&csr),
        "-CA",
        path(&ca.0),
        "-CAkey",
        path(&ca.1),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        path(&ext),
        "-out",
        path(&cert),
    ]);
    (cert, key)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
