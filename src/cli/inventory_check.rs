//! `mp-remote inventory check`: the inventory parsed, validated and resolved, as the user
//! wrote it plus everything filled in.

use crate::inventory::{escape_controls, Connection, Host, Inventory};
use crate::report::ExitCode;

pub fn run(inventory: &Inventory, hosts: &[&Host]) -> ExitCode {
    println!(
        "{}: ok, {} hosts, {} groups; {} selected",
        inventory.path.display(),
        inventory.hosts.len(),
        inventory.groups.len(),
        hosts.len()
    );
    for host in hosts {
        let roles: Vec<String> = host.roles.iter().map(|r| r.to_string()).collect();
        let reach = match host.connection {
            Connection::Local => "local".to_string(),
            Connection::Ssh => {
                let mut reach = format!("{}@{}:{}", host.ssh.user, host.ssh.address, host.ssh.port);
                let mut jump = host.ssh.jump.as_deref();
                while let Some(bastion) = jump {
                    reach.push_str(&format!(
                        " via {}@{}:{}",
                        bastion.user, bastion.address, bastion.port
                    ));
                    jump = bastion.jump.as_deref();
                }
                reach
            }
        };
        // HostName, User and ProxyJump may come from ~/.ssh/config, which nothing checked.
        println!(
            "  {:<16} {:<40} roles: {}",
            host.name,
            escape_controls(&reach),
            roles.join(",")
        );
    }
    if !inventory.services.is_empty() {
        println!("  services, in start order:");
    }
    for s in &inventory.services {
        let kind = match s.kind {
            crate::inventory::ServiceKind::Python => "python",
            crate::inventory::ServiceKind::Binary => "binary",
        };
        let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        println!(
            "  {:<16} {kind:<7} on {} as {}{}{}",
            s.name,
            s.hosts.join(","),
            s.user,
            if ports.is_empty() {
                String::new()
            } else {
                format!(", ports {}", ports.join(","))
            },
            if s.after.is_empty() {
                String::new()
            } else {
                format!(", after {}", s.after.join(","))
            }
        );
    }
    ExitCode::Ok
}
