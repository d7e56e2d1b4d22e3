//! The transport API itself over real SSH: exec, streaming, stdin, upload, one connection.

use std::time::Duration;

use mp_remote::transport::{
    ConnectOptions, HostKeyChecking, SshTarget, SshTransport, Stream, Transport, UploadOutcome,
};

use crate::support::fleet;

async fn connect(host: &str) -> SshTransport {
    let fleet = fleet::shared();
    let test_host = fleet.host(host);
    let target = SshTarget {
        label: host.to_string(),
        address: test_host.address.clone(),
        port: test_host.ssh_port,
        user: "root".into(),
        identity_files: vec![fleet.key.clone()],
        host_key_checking: HostKeyChecking::AcceptNew,
        known_hosts: fleet.path("transport-known_hosts"),
        connect_timeout: Duration::from_secs(10),
        keepalive: Duration::from_secs(5),
        jump: None,
    };
    SshTransport::connect(&target, &ConnectOptions::default())
        .await
        .expect("connect")
}

#[tokio::test]
async fn exec_streams_stdout_stderr_and_exit_status() {
    let ssh = connect("h1").await;
    let mut chunks = Vec::new();
    let mut sink = |stream: Stream, data: &[u8]| chunks.push((stream, data.to_vec()));
    let status = ssh
        .exec_streaming("echo out; echo err >&2; exit 3", b"", &mut sink)
        .await
        .unwrap();
    assert_eq!(status, Some(3));
    let text = |wanted: Stream| -> String {
        chunks
            .iter()
            .filter(|(s, _)| *s == wanted)
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect()
    };
    assert_eq!(text(Stream::Stdout), "out\n");
    assert_eq!(text(Stream::Stderr), "err\n");
    ssh.close().await;
}

#[tokio::test]
async fn large_stdin_round_trips_and_one_connection_serves_many_channels() {
    let ssh = connect("h1").await;
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let output = ssh.exec("wc -c", &data).await.unwrap();
    assert_eq!(output.stdout_text().trim(), "5000000");
    // Twenty commands at once on the same connection, each on its own channel.
    let results = futures::future::join_all((0..20).map(|i| {
        let ssh = &ssh;
        async move {
            ssh.exec(&format!("echo {i}"), b"")
                .await
                .unwrap()
                .stdout_text()
        }
    }))
    .await;
    for (i, out) in results.iter().enumerate() {
        assert_eq!(out.trim(), i.to_string());
    }
    ssh.close().await;
}

#[tokio::test]
async fn upload_is_atomic_and_skipped_on_the_same_hash() {
    let ssh = connect("h2").await;
    let path = "/opt/mp-upload-test/dir/file.bin";
    ssh.exec("rm -rf /opt/mp-upload-test", b"").await.unwrap();
    let contents = b"first version\n".repeat(1000);
    assert_eq!(
        ssh.upload(&contents, path, 0o640).await.unwrap(),
        UploadOutcome::Uploaded
    );
    let before = ssh
        .exec(&format!("stat -c '%a %i %Y' {path}"), b"")
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(
        ssh.upload(&contents, path, 0o640).await.unwrap(),
        UploadOutcome::Unchanged
    );
    let after = ssh
        .exec(&format!("stat -c '%a %i %Y' {path}"), b"")
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(before, after, "an unchanged upload does not touch the file");
    assert!(before.starts_with("640 "), "{before}");
    assert_eq!(
        ssh.upload(b"second\n", path, 0o600).await.unwrap(),
        UploadOutcome::Uploaded
    );
    let now = ssh
        .exec(
            &format!("cat {path}; ls /opt/mp-upload-test/dir | wc -l"),
            b"",
        )
        .await
        .unwrap();
    assert_eq!(
        now.stdout_text(),
        "second\n1\n",
        "new content, no temp file left behind"
    );
    ssh.close().await;
}
