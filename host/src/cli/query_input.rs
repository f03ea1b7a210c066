//! Where `leashed query` takes its input from: the server's URL (--url, $LEASHED_URL,
//! $DATABASE_URL, with --password-file), and the SQL (arguments, --file, standard input).

use leashed::mysql_url::MysqlUrl;
use std::path::Path;

/// The server's URL: --url, else $LEASHED_URL, else $DATABASE_URL; with the password from
/// --password-file if given. Warns about a password on the command line, as the mysql client does.
pub fn server_url(url: Option<&str>, password_file: Option<&Path>) -> Result<MysqlUrl, String> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).map(|v| (v, name.to_string()));
    let (text, origin) = match url {
        Some(url) => (url.to_string(), "--url".to_string()),
        None => from_env("LEASHED_URL")
            .or_else(|| from_env("DATABASE_URL"))
            .ok_or("no server given: pass --url mysql://USER@HOST:PORT/DB, or set LEASHED_URL or DATABASE_URL")?,
    };
    let mut url = MysqlUrl::parse(&text).map_err(|e| if origin == "--url" { e } else { format!("${origin}: {e}") })?;
    if let Some(path) = password_file {
        let contents = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
        url.password = Some(contents.lines().next().unwrap_or_default().to_string());
    } else if origin == "--url" && url.password.as_deref().is_some_and(|p| !p.is_empty()) {
        eprintln!(
            "warning: a password on the command line can be seen by other users of this machine; \
             use --password-file FILE or LEASHED_URL instead"
        );
    }
    Ok(url)
}

/// The SQL: the arguments, else --file (`-`: stdin), else stdin when it is not a terminal.
pub fn sql_text(args: &[String], file: Option<&Path>) -> Result<String, String> {
    use std::io::{IsTerminal, Read};
    let read_stdin = || {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read SQL from standard input: {e}"))?;
        Ok::<_, String>(text)
    };
    let text = match file {
        _ if !args.is_empty() => args.join(" "),
        Some(path) if path.as_os_str() == "-" => read_stdin()?,
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None if std::io::stdin().is_terminal() => {
            return Err("no SQL given: pass it as arguments, with --file FILE, or on standard input".into());
        }
        None => read_stdin()?,
    };
    if text.trim().is_empty() {
        return Err("the SQL is empty".into());
    }
    Ok(text)
}
