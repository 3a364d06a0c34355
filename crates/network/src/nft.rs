//! NAT and filtering through nftables: the whole of Berth's table is generated from state
//! as nftables JSON and replaced in one atomic `nft -j -f -` batch. Only that table is
//! ever touched.

use std::net::Ipv4Addr;
use std::process::Stdio;

use ipnet::Ipv4Net;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::error::{NetError, Result};
use crate::types::PortBinding;

/// The facts about one bridge network that its rules depend on.
#[derive(Debug, Clone)]
pub(crate) struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
    /// Published ports and the container address each one leads to.
    pub ports: Vec<(PortBinding, Ipv4Addr)>,
}

const FAMILY: &str = "inet";

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn prefix(net: &Ipv4Net) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}

fn chain(table: &str, name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": FAMILY, "table": table, "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
}

fn rule(table: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": table, "chain": chain, "expr": expr}}})
}

fn table_obj(table: &str) -> Value {
    json!({"table": {"family": FAMILY, "name": table}})
}

/// The DNAT rule of one published port. `from_host` rules sit on the output hook and leave
/// loopback destinations to the userland proxy (the kernel does not route 127/8 off-host).
fn dnat_rule(
    table: &str,
    chain_name: &str,
    pb: &PortBinding,
    to: Ipv4Addr,
    from_host: bool,
) -> Value {
    let l4 = pb.proto.as_str();
    let mut expr = vec![matches("==", meta("nfproto"), json!("ipv4"))];
    if pb.host_ip.is_unspecified() {
        expr.push(matches(
            "==",
            json!({"fib": {"result": "type", "flags": ["daddr"]}}),
            json!("local"),
        ));
    } else {
        expr.push(matches(
            "==",
            json!({"payload": {"protocol": "ip", "field": "daddr"}}),
            json!(pb.host_ip.to_string()),
        ));
    }
    if from_host {
        expr.push(matches(
            "!=",
            json!({"payload": {"protocol": "ip", "field": "daddr"}}),
            prefix(&Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_default()),
        ));
    }
    expr.push(matches("==", meta("l4proto"), json!(l4)));
    expr.push(matches(
        "==",
        json!({"payload": {"protocol": l4, "field": "dport"}}),
        json!(pb.host_port),
    ));
    expr.push(json!({"dnat": {"family": "ip", "addr": to.to_string(), "port": pb.container_port}}));
    rule(table, chain_name, expr)
}

/// The complete batch that replaces table `table` with the rules for `nets`.
pub(crate) fn ruleset(table: &str, nets: &[BridgeRules]) -> Value {
    // add + delete + add: replaces the table whether or not it existed, atomically.
    let mut cmds = vec![
        json!({"add": table_obj(table)}),
        json!({"delete": table_obj(table)}),
        json!({"add": table_obj(table)}),
        chain(table, "prerouting", "nat", "prerouting", -100),
        chain(table, "output", "nat", "output", -100),
        chain(table, "postrouting", "nat", "postrouting", 100),
        chain(table, "forward", "filter", "forward", 0),
    ];
    for net in nets {
        let br = json!(net.bridge);
        if !net.internal {
            cmds.push(rule(
                table,
                "postrouting",
                vec![
                    matches(
                        "==",
                        json!({"payload": {"protocol": "ip", "field": "saddr"}}),
                        prefix(&net.subnet),
                    ),
                    matches("!=", meta("oifname"), br.clone()),
                    json!({"masquerade": null}),
                ],
            ));
        } else {
            // Internal: traffic stays on the bridge, in both directions.
            cmds.push(rule(
                table,
                "forward",
                vec![
                    matches("==", meta("iifname"), br.clone()),
                    matches("!=", meta("oifname"), br.clone()),
                    json!({"drop": null}),
                ],
            ));
            cmds.push(rule(
                table,
                "forward",
                vec![
                    matches("==", meta("oifname"), br.clone()),
                    matches("!=", meta("iifname"), br.clone()),
                    json!({"drop": null}),
                ],
            ));
        }
        let others: Vec<&str> = nets
            .iter()
            .filter(|o| o.bridge != net.bridge)
            .map(|o| o.bridge.as_str())
            .collect();
        if !others.is_empty() {
            cmds.push(rule(
                table,
                "forward",
                vec![
                    matches("==", meta("iifname"), br.clone()),
                    matches("==", meta("oifname"), json!({"set": others})),
                    json!({"drop": null}),
                ],
            ));
        }
        for (pb, to) in &net.ports {
            cmds.push(dnat_rule(table, "prerouting", pb, *to, false));
            cmds.push(dnat_rule(table, "output", pb, *to, true));
        }
    }
    json!({"nftables": cmds})
}

/// The batch that removes table `table` (and succeeds when it does not exist).
pub(crate) fn delete_table(table: &str) -> Value {
    json!({"nftables": [{"add": table_obj(table)}, {"delete": table_obj(table)}]})
}

/// Feeds one batch to `nft -j -f -`; nft applies a batch entirely or not at all.
pub(crate) async fn apply(batch: &Value) -> Result<()> {
    let text =
        serde_json::to_vec(batch).map_err(|e| NetError::Nft(format!("encoding rules: {e}")))?;
    let mut child = tokio::process::Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            NetError::Nft(format!(
                "running nft (is the nftables package installed?): {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&text)
            .await
            .map_err(|e| NetError::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| NetError::Nft(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        return Err(NetError::Nft(format!(
            "nft failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Lists the rules of `table` in nft's text syntax, or None when it does not exist.
pub async fn list_table(table: &str) -> Result<Option<String>> {
    let out = tokio::process::Command::new("nft")
        .args(["list", "table", FAMILY, table])
        .output()
        .await
        .map_err(|e| NetError::Nft(format!("running nft: {e}")))?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_shape() {
        let nets = vec![
            BridgeRules {
                bridge: "bra".into(),
                subnet: "10.9.1.0/24".parse().unwrap(),
                internal: false,
                ports: vec![(PortBinding::tcp(8080, 80), Ipv4Addr::new(10, 9, 1, 2))],
            },
            BridgeRules {
                bridge: "brb".into(),
                subnet: "10.9.2.0/24".parse().unwrap(),
                internal: true,
                ports: vec![],
            },
        ];
        let v = ruleset("t", &nets);
        let text = v.to_string();
        assert!(text.contains("\"masquerade\":null"));
        assert_eq!(
            text.matches("masquerade").count(),
            1,
            "internal network must not masquerade"
        );
        assert_eq!(text.matches("\"dnat\"").count(), 2, "prerouting + output");
        let cmds = v["nftables"].as_array().unwrap();
        assert!(cmds[1].get("delete").is_some());
        assert!(cmds.iter().all(|c| c.to_string().contains("\"t\"")));
    }
}
