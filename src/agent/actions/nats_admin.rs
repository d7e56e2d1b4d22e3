//! How the agent on a NATS host logs in to its server: as the fleet's admin user, with the
//! password the init layer wrote to [`ADMIN_PASSWORD_FILE`]. Without that file (a server
//! mp-remote has not configured yet, e.g. during `--check` of a first deploy) it connects
//! anonymously, which such a server still allows. Where the CA of `[components.nats] tls` is
//! on the host, it is trusted: the client switches to TLS when the server asks for it.

use async_nats::ConnectOptions;

use crate::stack::nats::{NatsUser, ADMIN_PASSWORD_FILE, TLS_CA_FILE};

pub fn connect_options() -> Result<ConnectOptions, String> {
    let options = options_from(std::path::Path::new(ADMIN_PASSWORD_FILE))?;
    let ca = std::path::Path::new(TLS_CA_FILE);
    Ok(if ca.is_file() {
        options.add_root_certificates(ca.to_path_buf())
    } else {
        options
    })
}

fn options_from(file: &std::path::Path) -> Result<ConnectOptions, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let password = text.lines().next().unwrap_or_default().to_string();
            Ok(ConnectOptions::new().user_and_password(NatsUser::Admin.name().into(), password))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConnectOptions::new()),
        Err(e) => Err(format!(
            "cannot read the NATS admin password {}: {e}",
            file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_anonymous_and_an_unreadable_one_says_which() {
        assert!(options_from(std::path::Path::new("/nonexistent/nats-admin-password")).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let e = options_from(dir.path()).err().unwrap();
        assert!(
            e.starts_with("cannot read the NATS admin password /"),
            "{e}"
        );
    }
}
