//! The layering `docs/architecture.md` promises, read from the sources:
//! no two top-level modules of the library, nor of the load generator
//! (`loadtest/src`), depend on each other, however indirectly, and the
//! media engine (`worker/`) knows nothing of the cluster, the signalling,
//! the processes or their configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module of the crate whose sources are in `dir` (relative to
/// this repository) → the top-level modules its code names as
/// `crate::NAME` (unit tests left out: they may reach anywhere).
fn imports(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            let name = rel.file_name().unwrap().to_string_lossy();
            if top == "main" || top == "lib" || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            // Comments (doc links among them) are not dependencies.
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let used = graph.entry(top.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                // `crate::{a, b::c}` names each module of the group.
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                    None => vec![rest],
                };
                for name in names {
                    let module: String = name
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if !module.is_empty() && module != top {
                        used.insert(module);
                    }
                }
            }
        }
    }
    graph
}

/// A path of imports from `from` back to `to`, if there is one.
fn path_back(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in graph.get(from).into_iter().flatten() {
        if next == to {
            return Some(vec![from.to_string(), to.to_string()]);
        }
        if seen.insert(next.clone()) {
            if let Some(mut path) = path_back(graph, next, to, seen) {
                path.insert(0, from.to_string());
                return Some(path);
            }
        }
    }
    None
}

/// Every import cycle of `graph`, written out.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut cycles = Vec::new();
    for (module, used) in graph {
        for other in used {
            if let Some(back) = path_back(graph, other, module, &mut BTreeSet::new()) {
                cycles.push(format!("{module} -> {}", back.join(" -> ")));
            }
        }
    }
    cycles
}

#[test]
fn no_two_modules_depend_on_each_other() {
    let graph = imports("src");
    assert!(graph.contains_key("worker") && graph.contains_key("signal"));
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn no_two_modules_of_the_load_generator_depend_on_each_other() {
    let graph = imports("loadtest/src");
    assert!(graph.contains_key("run") && graph.contains_key("parloir_client"));
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

/// The check finds a cycle when there is one: the runner's participant
/// types in the runner itself, as they were.
#[test]
fn a_cycle_is_found() {
    let mut graph = imports("loadtest/src");
    graph
        .entry("run".into())
        .or_default()
        .insert("parloir_client".into());
    graph
        .entry("parloir_client".into())
        .or_default()
        .insert("run".into());
    assert!(!cycles(&graph).is_empty());
}

#[test]
fn the_media_engine_knows_nothing_above_it() {
    let graph = imports("src");
    let above = ["cluster", "signal", "roles", "config", "metrics", "cli"];
    let reached: Vec<&String> = graph["worker"]
        .iter()
        .filter(|m| above.contains(&m.as_str()))
        .collect();
    assert!(reached.is_empty(), "worker/ imports {reached:?}");
}
