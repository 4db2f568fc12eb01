//! docs/TUTORIAL.md is tested: every `$ ` line of its `console` blocks runs
//! in one folder holding the CSV fixtures, in order, and what it prints must
//! be what the tutorial shows. Numbers are compared to 4 significant digits,
//! so that training's last digits may differ between CPUs without the
//! tutorial lying about anything a reader would notice.

use std::path::Path;
use std::process::Command;

use crate::util::{bin, fixtures, tempdir};

/// One `$ command` and the output shown under it.
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn steps(markdown: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for (n, line) in markdown.lines().enumerate() {
        if line.starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: n + 1,
                command: cmd.to_owned(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_owned());
        }
    }
    steps
}

/// Runs a tutorial command: `modeltool ...`, `cat FILE` or `head -n N FILE`.
fn run(dir: &Path, command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["modeltool", args @ ..] => {
            let out = Command::new(bin())
                .args(args)
                .current_dir(dir)
                .output()
                .expect("modeltool runs");
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text
        }
        ["cat", file] => std::fs::read_to_string(dir.join(file)).expect("the file exists"),
        ["head", "-n", n, file] => {
            let text = std::fs::read_to_string(dir.join(file)).expect("the file exists");
            let n: usize = n.parse().expect("a line count");
            text.lines().take(n).map(|l| format!("{l}\n")).collect()
        }
        _ => panic!("the tutorial runs only modeltool, cat and head -n: `{command}`"),
    }
}

fn same_token(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let num = |s: &str| s.trim_end_matches([',', ')', ';']).parse::<f64>().ok();
    match (num(a), num(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1e-2),
        _ => false,
    }
}

fn same_line(actual: &str, expected: &str) -> bool {
    let (a, e): (Vec<&str>, Vec<&str>) = (
        actual.split_whitespace().collect(),
        expected.split_whitespace().collect(),
    );
    a.len() == e.len() && a.iter().zip(&e).all(|(x, y)| same_token(x, y))
}

#[test]
fn every_command_in_the_tutorial_prints_what_the_tutorial_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tutorial =
        std::fs::read_to_string(root.join("docs/TUTORIAL.md")).expect("docs/TUTORIAL.md");
    let steps = steps(&tutorial);
    assert!(
        steps.len() >= 10,
        "the tutorial shows its commands in ```console blocks"
    );
    let dir = tempdir();
    for name in ["height_weight.csv", "square.csv"] {
        std::fs::copy(fixtures().join(name), dir.path().join(name)).expect("copy a fixture");
    }
    for step in steps {
        let actual = run(dir.path(), &step.command);
        let actual: Vec<&str> = actual.lines().collect();
        let expected: Vec<&str> = step
            .expected
            .iter()
            .map(String::as_str)
            .filter(|l| !l.is_empty())
            .collect();
        let actual_nonempty: Vec<&str> = actual.iter().copied().filter(|l| !l.is_empty()).collect();
        let ok = actual_nonempty.len() == expected.len()
            && actual_nonempty
                .iter()
                .zip(&expected)
                .all(|(a, e)| same_line(a, e));
        assert!(
            ok,
            "docs/TUTORIAL.md line {}: `{}` printed\n{}\n--- but the tutorial shows ---\n{}",
            step.line,
            step.command,
            actual.join("\n"),
            expected.join("\n")
        );
    }
}
