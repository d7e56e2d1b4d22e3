//! `mp-remote inventory check`: the inventory parsed, validated and resolved, as the user
//! wrote it plus everything filled in.

use crate::inventory::{Connection, Host, Inventory};
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
        println!(
            "  {:<16} {:<40} roles: {}",
            host.name,
            reach,
            roles.join(",")
        );
    }
    ExitCode::Ok
}
