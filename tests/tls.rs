//! TLS against the live MariaDB, which scripts/mariadb starts with a test CA's certificate for
//! DNS:localhost (not for 127.0.0.1): every tls-mode, a wrong CA, and the identity check both
//! ways. A refused certificate is a clear `tls` error, and every lent handle is still released.

use leashed::bindings::{ConnectOptions, ErrorCode, MysqlError, TlsMode, Value};
use leashed::mysql_url::MysqlUrl;
use leashed_tests::{Account, assert_all_released_and_closed, instance_for, options, url};

fn ca(var: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the tests with scripts/test"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_tls(url: &MysqlUrl, mode: TlsMode, ca_var: Option<&str>) -> ConnectOptions {
    ConnectOptions { tls_mode: mode, tls_ca_pem: ca_var.map(ca), ..options(url) }
}

/// Connects with these options and returns the server's view of the session's TLS version
/// (empty without TLS) and the guest's; or the error.
async fn session_tls(url: &MysqlUrl, options: &ConnectOptions) -> Result<(String, bool), MysqlError> {
    let mut instance = instance_for(url).await;
    let outcome = match instance.open(options).await.unwrap() {
        Ok(conn) => {
            let sets = instance.query(conn, "SHOW SESSION STATUS LIKE 'Ssl_version'").await.unwrap().expect("query");
            let version = match &sets[0].rows[0][1] {
                Value::Text(v) => v.clone(),
                other => panic!("Ssl_version is {other:?}"),
            };
            let uses_tls = instance.uses_tls(conn).await.unwrap();
            instance.close(conn).await.unwrap().unwrap();
            Ok((version, uses_tls))
        }
        Err(e) => Err(e),
    };
    assert_all_released_and_closed(&instance);
    outcome
}

#[tokio::test]
async fn each_tls_mode_against_the_live_server() {
    let url = url(Account::Native);
    let encrypted = |result: Result<(String, bool), MysqlError>| {
        let (version, uses_tls) = result.expect("connects");
        assert!(version.starts_with("TLSv1."), "server sees {version:?}");
        assert!(uses_tls);
    };
    let plain = session_tls(&url, &with_tls(&url, TlsMode::Disabled, None)).await.unwrap();
    assert_eq!(plain, (String::new(), false), "disabled: plain TCP");
    encrypted(session_tls(&url, &with_tls(&url, TlsMode::Preferred, None)).await);
    encrypted(session_tls(&url, &with_tls(&url, TlsMode::Required, None)).await);
    // verify-ca checks the chain, not the name, so 127.0.0.1 passes.
    encrypted(session_tls(&url, &with_tls(&url, TlsMode::VerifyCa, Some("LEASHED_TEST_TLS_CA"))).await);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_clearly() {
    let url = url(Account::Native);
    let options = with_tls(&url, TlsMode::VerifyCa, Some("LEASHED_TEST_TLS_OTHER_CA"));
    let error = session_tls(&url, &options).await.unwrap_err();
    let MysqlError::Io(ErrorCode::Tls(why)) = &error else { panic!("{error:?}") };
    assert!(why.contains("invalid peer certificate: UnknownIssuer"), "{why}");
}

#[tokio::test]
async fn verify_identity_checks_the_name_in_the_certificate() {
    let by_ip = url(Account::Native);
    let error =
        session_tls(&by_ip, &with_tls(&by_ip, TlsMode::VerifyIdentity, Some("LEASHED_TEST_TLS_CA"))).await.unwrap_err();
    let MysqlError::Io(ErrorCode::Tls(why)) = &error else { panic!("{error:?}") };
    assert!(why.contains("certificate not valid for name \"127.0.0.1\""), "{why}");

    let by_name = MysqlUrl { host: "localhost".into(), ..by_ip };
    let (version, _) = session_tls(&by_name, &with_tls(&by_name, TlsMode::VerifyIdentity, Some("LEASHED_TEST_TLS_CA")))
        .await
        .expect("the certificate names localhost");
    assert!(version.starts_with("TLSv1."));
}

#[tokio::test]
async fn verification_without_a_ca_is_refused() {
    let url = url(Account::Native);
    let error = session_tls(&url, &with_tls(&url, TlsMode::VerifyCa, None)).await.unwrap_err();
    assert!(
        matches!(&error, MysqlError::Io(ErrorCode::Tls(why)) if why.contains("needs CA certificates")),
        "{error:?}"
    );
}
