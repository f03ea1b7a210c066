//! The authentication plugins MariaDB 10.11 cannot host, against the scripted server peer over
//! real TCP (and real TLS): caching_sha2_password (fast path; full auth with the server's key
//! asked for, with a pinned key, and over TLS), sha256_password, plugin switches, and
//! mysql_clear_password refused without TLS unless allowed. The server side checks what the
//! guest sent: scrambles are recomputed and RSA blobs decrypted.
//!
//! mysql_native_password and client_ed25519 run against the live MariaDB (live_query.rs,
//! session.rs).

use leashed::bindings::{ConnectOptions, ErrorCode, MysqlError, TlsMode};
use leashed::mysql_url::MysqlUrl;
use leashed_tests::scripted_server::{NONCE, Peer, spawn};
use leashed_tests::{assert_all_released_and_closed, instance_for, options};
use mysql_common::auth::plugins::caching_sha2_password::scramble_sha256;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey};
use std::net::SocketAddr;
use std::sync::OnceLock;

const PASSWORD: &str = "s3cret-pässword";

/// One RSA key pair for every test (2048 bits, as MySQL's).
fn server_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key"))
}

fn public_pem() -> String {
    server_key().to_public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

/// Decrypts the guest's RSA-OAEP blob and undoes the XOR with the nonce: the password sent.
fn decrypt_password(blob: &[u8], nonce: &[u8]) -> Vec<u8> {
    let xored = server_key().decrypt(Oaep::new::<sha1::Sha1>(), blob).expect("RSA-OAEP (SHA-1) decrypts");
    xored.iter().zip(nonce.iter().cycle()).map(|(b, n)| b ^ n).collect()
}

fn password_with_nul() -> Vec<u8> {
    let mut expected = PASSWORD.as_bytes().to_vec();
    expected.push(0);
    expected
}

fn options_for(addr: SocketAddr) -> (MysqlUrl, ConnectOptions) {
    let url = MysqlUrl {
        host: "127.0.0.1".into(),
        port: addr.port(),
        user: "alice".into(),
        password: Some(PASSWORD.into()),
        database: None,
    };
    let opts = ConnectOptions { tls_mode: TlsMode::Disabled, ..options(&url) };
    (url, opts)
}

/// Logs in with `options`, pings, closes; returns the login's error if it failed. Every lent
/// handle must be released either way.
async fn log_in(url: &MysqlUrl, options: &ConnectOptions) -> Result<(), MysqlError> {
    let mut instance = instance_for(url).await;
    let result = match instance.open(options).await.unwrap() {
        Ok(conn) => {
            instance.ping(conn).await.unwrap().expect("ping after login");
            instance.close(conn).await.unwrap().unwrap();
            Ok(())
        }
        Err(e) => Err(e),
    };
    assert_all_released_and_closed(&instance);
    result
}

/// Reads the handshake response and checks the caching_sha2 scramble of the password.
async fn expect_sha256_scramble(peer: &mut Peer) {
    let (user, data, plugin, _) = peer.handshake_response().await;
    assert_eq!((user.as_str(), plugin.as_str()), ("alice", "caching_sha2_password"));
    assert_eq!(data, scramble_sha256(&NONCE, PASSWORD.as_bytes()).unwrap());
}

#[tokio::test]
async fn caching_sha2_fast_path() {
    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("caching_sha2_password", false).await;
        expect_sha256_scramble(&mut peer).await;
        peer.send(&[0x01, 0x03]).await; // fast auth: the server had the hash cached
        peer.ok().await;
        peer.serve_commands().await;
    })
    .await;
    let (url, opts) = options_for(addr);
    log_in(&url, &opts).await.expect("login");
    server.await.expect("the server script ran to the end");
}

#[tokio::test]
async fn caching_sha2_full_auth_asks_for_the_key_without_tls() {
    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("caching_sha2_password", false).await;
        expect_sha256_scramble(&mut peer).await;
        peer.send(&[0x01, 0x04]).await; // full authentication needed
        assert_eq!(peer.recv().await.unwrap(), [0x02], "the client asks for the public key");
        let mut key = vec![0x01];
        key.extend_from_slice(public_pem().as_bytes());
        peer.send(&key).await;
        let blob = peer.recv().await.unwrap();
        assert_eq!(blob.len(), 256, "one RSA-2048 block");
        assert_eq!(decrypt_password(&blob, &NONCE), password_with_nul());
        peer.ok().await;
        peer.serve_commands().await;
    })
    .await;
    let (url, opts) = options_for(addr);
    log_in(&url, &opts).await.expect("login");
    server.await.expect("the server script ran to the end");
}

#[tokio::test]
async fn caching_sha2_full_auth_with_a_pinned_key_does_not_ask() {
    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("caching_sha2_password", false).await;
        expect_sha256_scramble(&mut peer).await;
        peer.send(&[0x01, 0x04]).await;
        let blob = peer.recv().await.unwrap();
        assert_eq!(decrypt_password(&blob, &NONCE), password_with_nul(), "encrypted at once with the pinned key");
        peer.ok().await;
        peer.serve_commands().await;
    })
    .await;
    let (url, opts) = options_for(addr);
    let pinned = ConnectOptions { server_public_key_pem: Some(public_pem()), ..opts };
    log_in(&url, &pinned).await.expect("login");
    server.await.expect("the server script ran to the end");
}

#[tokio::test]
async fn caching_sha2_full_auth_over_tls_sends_the_password() {
    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("caching_sha2_password", true).await;
        let mut peer = peer.accept_tls().await;
        expect_sha256_scramble(&mut peer).await;
        peer.send(&[0x01, 0x04]).await;
        assert_eq!(peer.recv().await.unwrap(), password_with_nul(), "in clear, inside TLS");
        peer.ok().await;
        peer.serve_commands().await;
    })
    .await;
    let (url, opts) = options_for(addr);
    let tls = ConnectOptions { tls_mode: TlsMode::Required, ..opts };
    log_in(&url, &tls).await.expect("login");
    server.await.expect("the server script ran to the end");
}

#[tokio::test]
async fn caching_sha2_wrong_password_is_an_auth_error() {
    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("caching_sha2_password", false).await;
        let (_, data, _, _) = peer.handshake_response().await;
        assert_ne!(data, scramble_sha256(&NONCE, b"the real password").unwrap());
        peer.err(1045, "28000", "Access denied for user 'alice'").await;
        assert!(peer.recv().await.is_none(), "the client hangs up");
    })
    .await;
    let (url, opts) = options_for(addr);
    let error = log_in(&url, &opts).await.unwrap_err();
    assert!(matches!(&error, MysqlError::Auth(e) if e.code == 1045 && e.sql_state == "28000"), "{error:?}");
    server.await.expect("the server script ran to the end");
}

#[tokio::test]
async fn sha256_password_asks_for_the_key_and_encrypts() {
    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("sha256_password", false).await;
        let (_, data, plugin, _) = peer.handshake_response().await;
        assert_eq!((plugin.as_str(), &data[..]), ("sha256_password", &[0x01][..]), "a request for the key");
        let mut key = vec![0x01];
        key.extend_from_slice(public_pem().as_bytes());
        peer.send(&key).await;
        let blob = peer.recv().await.unwrap();
        assert_eq!(decrypt_password(&blob, &NONCE), password_with_nul());
        peer.ok().await;
        peer.serve_commands().await;
    })
    .await;
    let (url, opts) = options_for(addr);
    log_in(&url, &opts).await.expect("login");
    server.await.expect("the server script ran to the end");
}

/// An auth switch from mysql_native_password to caching_sha2_password, with a fresh nonce.
#[tokio::test]
async fn auth_switch_to_caching_sha2_uses_the_new_nonce() {
    let fresh: [u8; 20] = *b"ZYXWVUTSRQPONMLKJIHG";
    let (addr, server) = spawn(move |mut peer| async move {
        peer.greet("mysql_native_password", false).await;
        let (_, _, plugin, _) = peer.handshake_response().await;
        assert_eq!(plugin, "mysql_native_password");
        let mut switch = vec![0xfe];
        switch.extend_from_slice(b"caching_sha2_password\0");
        switch.extend_from_slice(&fresh);
        switch.push(0);
        peer.send(&switch).await;
        assert_eq!(peer.recv().await.unwrap(), scramble_sha256(&fresh, PASSWORD.as_bytes()).unwrap());
        peer.send(&[0x01, 0x03]).await;
        peer.ok().await;
        peer.serve_commands().await;
    })
    .await;
    let (url, opts) = options_for(addr);
    log_in(&url, &opts).await.expect("login");
    server.await.expect("the server script ran to the end");
}

/// A switch to mysql_clear_password on plain TCP: refused (2059) unless the options allow it,
/// and then the password goes as it is.
#[tokio::test]
async fn clear_password_needs_tls_or_consent() {
    let script = |expect_password: bool| {
        move |mut peer: Peer| async move {
            peer.greet("mysql_native_password", false).await;
            peer.handshake_response().await;
            peer.send(b"\xfemysql_clear_password\0").await;
            match peer.recv().await {
                Some(sent) if expect_password => {
                    assert_eq!(sent, password_with_nul());
                    peer.ok().await;
                    peer.serve_commands().await;
                }
                other => assert!(!expect_password && other.is_none(), "the client must hang up: {other:?}"),
            }
        }
    };
    let (addr, server) = spawn(script(false)).await;
    let (url, opts) = options_for(addr);
    let error = log_in(&url, &opts).await.unwrap_err();
    assert!(
        matches!(&error, MysqlError::Auth(e) if e.code == 2059 && e.message.contains("sends the password in clear")),
        "{error:?}"
    );
    server.await.expect("the server script ran to the end");

    let (addr, server) = spawn(script(true)).await;
    let (url, opts) = options_for(addr);
    log_in(&url, &ConnectOptions { allow_cleartext_password: true, ..opts }).await.expect("login when allowed");
    server.await.expect("the server script ran to the end");
}

/// A server that does not offer TLS: `required` fails before sending credentials, `preferred`
/// logs in over plain TCP.
#[tokio::test]
async fn a_server_without_tls() {
    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("mysql_native_password", false).await;
        assert!(peer.recv().await.is_none(), "no credentials are sent");
    })
    .await;
    let (url, opts) = options_for(addr);
    let error = log_in(&url, &ConnectOptions { tls_mode: TlsMode::Required, ..opts }).await.unwrap_err();
    assert!(matches!(&error, MysqlError::Io(ErrorCode::Tls(why)) if why.contains("does not offer TLS")), "{error:?}");
    server.await.expect("the server script ran to the end");

    let (addr, server) = spawn(|mut peer| async move {
        peer.greet("mysql_native_password", false).await;
        let (_, _, _, caps) = peer.handshake_response().await;
        assert!(!caps.contains(mysql_common::constants::CapabilityFlags::CLIENT_SSL));
        peer.ok().await;
        peer.serve_commands().await;
    })
    .await;
    let (url, opts) = options_for(addr);
    log_in(&url, &ConnectOptions { tls_mode: TlsMode::Preferred, ..opts }).await.expect("plain login");
    server.await.expect("the server script ran to the end");
}
