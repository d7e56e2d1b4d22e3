//! Checks shared by the renderers: values that go into config files.

use super::StackError;

/// Ports must be non-zero and distinct.
pub(crate) fn check_ports(ports: &[(&'static str, u16)]) -> Result<(), StackError> {
    for (i, (name, port)) in ports.iter().enumerate() {
        if *port == 0 {
            return Err(StackError::invalid(name, "0", "a port must be 1-65535"));
        }
        if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
            return Err(StackError::invalid(
                name,
                port.to_string(),
                format!("the same port as {other}"),
            ));
        }
    }
    Ok(())
}
