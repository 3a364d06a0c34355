//! A subset of Go's `text/template`, enough for docker's `--format`:
//! fields (`{{.State.Pid}}`), variables, pipelines, `range`/`if`/`with`/`else`/
//! `end`, string and number literals, and docker's functions (`json`, `index`,
//! `join`, `upper`, `lower`, `title`, `split`, `len`, `truncate`, `pad`,
//! `print*`, comparisons). Data is JSON; values print as Go's `%v` would.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(String);

fn err<T>(m: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(m.into()))
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    Range {
        vars: Vec<String>,
        pipe: Pipeline,
        body: Vec<Node>,
        alt: Vec<Node>,
    },
    If {
        pipe: Pipeline,
        body: Vec<Node>,
        alt: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        alt: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (var None) or `$x.A.B` (var Some); empty path is `.` or `$x`.
    Field(Option<String>, Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Var(String),
    Ident(String),
    Str(String),
    Num(String),
    Pipe,
    LParen,
    RParen,
    Decl,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>, TemplateError> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '|' {
            out.push(Tok::Pipe);
            i += 1;
        } else if ch == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if ch == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if ch == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if ch == ':' && c.get(i + 1) == Some(&'=') {
            out.push(Tok::Decl);
            i += 2;
        } else if ch == '=' {
            out.push(Tok::Decl);
            i += 1;
        } else if ch == '"' {
            let mut v = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => return err("unterminated quoted string"),
                    Some('"') => break,
                    Some('\\') => {
                        i += 1;
                        match c.get(i) {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some('r') => v.push('\r'),
                            Some('\\') => v.push('\\'),
                            Some('"') => v.push('"'),
                            Some(o) => {
                                v.push('\\');
                                v.push(*o)
                            }
                            None => return err("unterminated quoted string"),
                        }
                    }
                    Some(o) => v.push(*o),
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(v));
        } else if ch == '`' {
            let start = i + 1;
            let end = c[start..]
                .iter()
                .position(|&x| x == '`')
                .ok_or_else(|| TemplateError("unterminated raw string".into()))?;
            out.push(Tok::Str(c[start..start + end].iter().collect()));
            i = start + end + 1;
        } else if ch == '.' || ch == '$' {
            let start = i;
            i += 1;
            while i < c.len() && (ident_char(c[i]) || c[i] == '.') {
                i += 1;
            }
            let t: String = c[start..i].iter().collect();
            out.push(if ch == '.' {
                Tok::Field(t)
            } else {
                Tok::Var(t)
            });
        } else if ch.is_ascii_digit() || ch == '-' {
            let start = i;
            i += 1;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(c[start..i].iter().collect()));
        } else if ident_char(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else {
            return err(format!("unexpected {ch:?} in action"));
        }
    }
    Ok(out)
}

struct PipeParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl PipeParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn pipeline(&mut self, allow_decl: bool) -> Result<Pipeline, TemplateError> {
        let mut decl = Vec::new();
        if allow_decl {
            // `$a := ...` or `$k, $v := ...`
            let save = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(v)) = self.peek().cloned() {
                names.push(v);
                self.pos += 1;
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            if !names.is_empty() && self.peek() == Some(&Tok::Decl) {
                self.pos += 1;
                decl = names;
            } else {
                self.pos = save;
            }
        }
        let mut cmds = Vec::new();
        loop {
            let mut args = Vec::new();
            while let Some(t) = self.peek().cloned() {
                match t {
                    Tok::Pipe | Tok::RParen => break,
                    _ => {
                        self.pos += 1;
                        args.push(self.arg(t)?);
                    }
                }
            }
            if args.is_empty() {
                return err("missing command in pipeline");
            }
            cmds.push(args);
            if self.peek() == Some(&Tok::Pipe) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Pipeline { decl, cmds })
    }

    fn arg(&mut self, t: Tok) -> Result<Arg, TemplateError> {
        Ok(match t {
            Tok::Field(f) => Arg::Field(None, split_path(&f)),
            Tok::Var(v) => {
                let (name, path) = match v.find('.') {
                    Some(i) => (v[..i].to_string(), split_path(&v[i..])),
                    None => (v, vec![]),
                };
                Arg::Field(Some(name), path)
            }
            Tok::Str(s) => Arg::Lit(Value::String(s)),
            Tok::Num(n) => match serde_json::from_str::<Value>(&n) {
                Ok(v @ Value::Number(_)) => Arg::Lit(v),
                _ => return err(format!("bad number syntax: {n:?}")),
            },
            Tok::Ident(i) => match i.as_str() {
                "true" => Arg::Lit(Value::Bool(true)),
                "false" => Arg::Lit(Value::Bool(false)),
                "nil" => Arg::Lit(Value::Null),
                _ => Arg::Func(i),
            },
            Tok::LParen => {
                let p = self.pipeline(false)?;
                if self.peek() != Some(&Tok::RParen) {
                    return err("unclosed left paren");
                }
                self.pos += 1;
                Arg::Sub(p)
            }
            other => return err(format!("unexpected {other:?}")),
        })
    }
}

fn split_path(f: &str) -> Vec<String> {
    f.split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_pipeline(s: &str, allow_decl: bool) -> Result<Pipeline, TemplateError> {
    let mut p = PipeParser {
        toks: lex(s)?,
        pos: 0,
    };
    let pipe = p.pipeline(allow_decl)?;
    if p.pos != p.toks.len() {
        return err(format!("unexpected {:?} in command", p.toks[p.pos]));
    }
    Ok(pipe)
}

enum Item {
    Text(String),
    Action(String),
}

fn split_actions(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner = &rest[start + 2..];
        let end = inner
            .find("}}")
            .ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut action = &inner[..end];
        inner = &inner[end + 2..];
        if let Some(a) = action.strip_prefix("- ") {
            text = text.trim_end();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix(" -") {
            trim_next = true;
            action = a;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            items.push(Item::Action(action.to_string()));
        }
        rest = inner;
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
    Ok(items)
}

/// Parses nodes until `end` (or `else` when inside a block); returns the stop word.
fn parse_nodes(
    items: &[Item],
    pos: &mut usize,
    nested: bool,
) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        match item {
            Item::Text(t) => nodes.push(Node::Text(t.clone())),
            Item::Action(a) => {
                let word = a.split_whitespace().next().unwrap_or("");
                let rest = a[word.len()..].trim();
                match word {
                    "end" => {
                        if !nested {
                            return err("unexpected {{end}}");
                        }
                        return Ok((nodes, Some("end".into())));
                    }
                    "else" => {
                        if !nested {
                            return err("unexpected {{else}}");
                        }
                        return Ok((nodes, Some(format!("else {rest}").trim().to_string())));
                    }
                    "range" | "if" | "with" => nodes.push(parse_block(word, rest, items, pos)?),
                    "" => return err("missing value for command"),
                    _ => nodes.push(Node::Action(parse_pipeline(a, true)?)),
                }
            }
        }
    }
    if nested {
        return err("unexpected EOF: missing {{end}}");
    }
    Ok((nodes, None))
}

fn parse_block(
    word: &str,
    rest: &str,
    items: &[Item],
    pos: &mut usize,
) -> Result<Node, TemplateError> {
    let pipe = parse_pipeline(rest, true)?;
    let (body, stop) = parse_nodes(items, pos, true)?;
    let alt = match stop.as_deref() {
        Some("end") | None => Vec::new(),
        Some("else") => {
            let (alt, stop) = parse_nodes(items, pos, true)?;
            if stop.as_deref() != Some("end") {
                return err("expected {{end}}");
            }
            alt
        }
        Some(s) => {
            // `{{else if X}}` chains: the rest is a nested if ending at the same {{end}}.
            let inner = s.trim_start_matches("else").trim();
            let (w, r) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
            if w != "if" && w != "with" {
                return err(format!("unexpected {{{{{s}}}}}"));
            }
            vec![parse_block(w, r, items, pos)?]
        }
    };
    Ok(match word {
        "range" => Node::Range {
            vars: pipe.decl.clone(),
            pipe: Pipeline {
                decl: vec![],
                cmds: pipe.cmds,
            },
            body,
            alt,
        },
        "if" => Node::If { pipe, body, alt },
        _ => Node::With { pipe, body, alt },
    })
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let items = split_actions(src)?;
        let mut pos = 0;
        let (nodes, _) = parse_nodes(&items, &mut pos, false)?;
        Ok(Template { nodes })
    }

    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut vars = vec![("$".to_string(), data.clone())];
        exec(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

fn exec(
    nodes: &[Node],
    dot: &Value,
    vars: &mut Vec<(String, Value)>,
    out: &mut String,
) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipe(p, dot, vars)?;
                if p.decl.is_empty() {
                    out.push_str(&go_print(&v));
                } else {
                    for d in &p.decl {
                        vars.push((d.clone(), v.clone().unwrap_or(Value::Null)));
                    }
                }
            }
            Node::If { pipe, body, alt } => {
                let v = eval_pipe(pipe, dot, vars)?;
                let depth = vars.len();
                bind(pipe, &v, vars);
                let r = if truthy(&v) {
                    exec(body, dot, vars, out)
                } else {
                    exec(alt, dot, vars, out)
                };
                vars.truncate(depth);
                r?;
            }
            Node::With { pipe, body, alt } => {
                let v = eval_pipe(pipe, dot, vars)?;
                let depth = vars.len();
                bind(pipe, &v, vars);
                let r = match v {
                    Some(ref x) if truthy(&v) => exec(body, x, vars, out),
                    _ => exec(alt, dot, vars, out),
                };
                vars.truncate(depth);
                r?;
            }
            Node::Range {
                vars: names,
                pipe,
                body,
                alt,
            } => {
                let v = eval_pipe(pipe, dot, vars)?.unwrap_or(Value::Null);
                let items: Vec<(Value, Value)> = match v {
                    Value::Array(a) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i), x))
                        .collect(),
                    Value::Object(m) => {
                        let mut kv: Vec<_> =
                            m.into_iter().map(|(k, x)| (Value::String(k), x)).collect();
                        kv.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
                        kv
                    }
                    Value::Number(n) => {
                        let count = n.as_u64().unwrap_or(0);
                        (0..count)
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect()
                    }
                    Value::Null => vec![],
                    other => {
                        return err(format!(
                            "range can't iterate over {}",
                            go_print(&Some(other))
                        ))
                    }
                };
                if items.is_empty() {
                    exec(alt, dot, vars, out)?;
                }
                for (k, x) in items {
                    let depth = vars.len();
                    match names.len() {
                        0 => {}
                        1 => vars.push((names[0].clone(), x.clone())),
                        _ => {
                            vars.push((names[0].clone(), k));
                            vars.push((names[1].clone(), x.clone()));
                        }
                    }
                    let r = exec(body, &x, vars, out);
                    vars.truncate(depth);
                    r?;
                }
            }
        }
    }
    Ok(())
}

fn bind(pipe: &Pipeline, v: &Option<Value>, vars: &mut Vec<(String, Value)>) {
    for d in &pipe.decl {
        vars.push((d.clone(), v.clone().unwrap_or(Value::Null)));
    }
}

/// `None` is a missing map key (Go prints `<no value>`).
type V = Option<Value>;

fn eval_pipe(p: &Pipeline, dot: &Value, vars: &[(String, Value)]) -> Result<V, TemplateError> {
    let mut prev: Option<V> = None;
    for cmd in &p.cmds {
        prev = Some(eval_cmd(cmd, dot, vars, prev)?);
    }
    Ok(prev.unwrap_or(None))
}

fn eval_cmd(
    cmd: &[Arg],
    dot: &Value,
    vars: &[(String, Value)],
    piped: Option<V>,
) -> Result<V, TemplateError> {
    if let Arg::Func(name) = &cmd[0] {
        let mut args = Vec::with_capacity(cmd.len());
        for a in &cmd[1..] {
            args.push(eval_arg(a, dot, vars)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        return call(name, args);
    }
    if let (Arg::Field(var, path), true) = (&cmd[0], cmd.len() > 1 || piped.is_some()) {
        return call_method(var, path, &cmd[1..], dot, vars, piped);
    }
    eval_arg(&cmd[0], dot, vars)
}

/// `.Label "key"`: docker's row objects have methods taking arguments. Our
/// rows carry them as a hidden map under `__<Name>` (keys starting with `__`
/// are not fields: `{{json .}}` and printing skip them), indexed by the argument.
fn call_method(
    var: &Option<String>,
    path: &[String],
    args: &[Arg],
    dot: &Value,
    vars: &[(String, Value)],
    piped: Option<V>,
) -> Result<V, TemplateError> {
    let Some((name, parent)) = path.split_last() else {
        return err("can't give argument to non-function");
    };
    let hidden = Arg::Field(
        var.clone(),
        parent
            .iter()
            .cloned()
            .chain([format!("__{name}")])
            .collect(),
    );
    let table = eval_arg(&hidden, dot, vars)?;
    let mut keys = Vec::new();
    for a in args {
        keys.push(eval_arg(a, dot, vars)?);
    }
    keys.extend(piped);
    let [Some(Value::String(key))] = keys.as_slice() else {
        return err(format!(
            "wrong number of args for {name}: want 1 got {}",
            keys.len()
        ));
    };
    match table {
        Some(Value::Object(m)) => Ok(Some(
            m.get(key).cloned().unwrap_or(Value::String(String::new())),
        )),
        // A table's header row: docker titles the column with the key's last
        // dotted segment, dashes and underscores as spaces.
        Some(Value::String(h)) if h == HEADER_METHOD => {
            let last = key.rsplit('.').next().unwrap_or(key);
            Ok(Some(Value::String(last.replace(['-', '_'], " "))))
        }
        _ => err(format!("can't give argument to non-function .{name}")),
    }
}

/// The hidden method value of header rows (see `call_method`).
pub const HEADER_METHOD: &str = "<header>";

/// Drops the hidden method tables (`__Name` keys) before printing.
fn visible(v: &Value) -> std::borrow::Cow<'_, Value> {
    match v {
        Value::Object(m) if m.keys().any(|k| k.starts_with("__")) => {
            std::borrow::Cow::Owned(Value::Object(
                m.iter()
                    .filter(|(k, _)| !k.starts_with("__"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }
        _ => std::borrow::Cow::Borrowed(v),
    }
}

fn eval_arg(a: &Arg, dot: &Value, vars: &[(String, Value)]) -> Result<V, TemplateError> {
    match a {
        Arg::Lit(v) => Ok(Some(v.clone())),
        Arg::Sub(p) => eval_pipe(p, dot, vars),
        Arg::Func(f) => call(f, vec![]),
        Arg::Field(var, path) => {
            let base = match var {
                None => dot.clone(),
                Some(name) => match vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v.clone(),
                    None => return err(format!("undefined variable: {name}")),
                },
            };
            let mut cur = Some(base);
            for key in path {
                cur = match cur {
                    Some(Value::Object(mut m)) => m.remove(key),
                    Some(Value::Null) => return err(format!("nil pointer evaluating .{key}")),
                    None => None,
                    Some(other) => {
                        return err(format!(
                            "can't evaluate field {key} in type {}",
                            type_name(&other)
                        ))
                    }
                };
            }
            Ok(cur)
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn truthy(v: &V) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

fn as_str(v: &V) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        other => go_print(other),
    }
}

fn arity(name: &str, args: &[V], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn call(name: &str, args: Vec<V>) -> Result<V, TemplateError> {
    let s = |v: String| Ok(Some(Value::String(v)));
    match name {
        "json" => {
            arity(name, &args, 1)?;
            s(go_json(args[0].as_ref().unwrap_or(&Value::Null)))
        }
        "upper" => {
            arity(name, &args, 1)?;
            s(as_str(&args[0]).to_uppercase())
        }
        "lower" => {
            arity(name, &args, 1)?;
            s(as_str(&args[0]).to_lowercase())
        }
        "title" => {
            arity(name, &args, 1)?;
            let mut out = String::new();
            let mut start = true;
            for c in as_str(&args[0]).chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            s(out)
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = as_str(&args[1]);
            match &args[0] {
                Some(Value::Array(a)) => s(a
                    .iter()
                    .map(|x| as_str(&Some(x.clone())))
                    .collect::<Vec<_>>()
                    .join(&sep)),
                None | Some(Value::Null) => s(String::new()),
                other => err(format!("join: expected a list, got {}", go_print(other))),
            }
        }
        "split" => {
            arity(name, &args, 2)?;
            let parts = as_str(&args[0])
                .split(&as_str(&args[1]))
                .map(|p| Value::String(p.into()))
                .collect();
            Ok(Some(Value::Array(parts)))
        }
        "len" => {
            arity(name, &args, 1)?;
            let n = match &args[0] {
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                Some(Value::String(x)) => x.len(),
                other => return err(format!("len of {}", go_print(other))),
            };
            Ok(Some(Value::from(n)))
        }
        "index" => {
            if args.is_empty() {
                return err("wrong number of args for index");
            }
            let mut cur = args[0].clone();
            for k in &args[1..] {
                cur = match (cur, k) {
                    (Some(Value::Object(mut m)), Some(Value::String(key))) => {
                        Some(m.remove(key).unwrap_or(Value::String(String::new())))
                    }
                    (Some(Value::Array(a)), Some(Value::Number(n))) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        match a.get(i) {
                            Some(x) => Some(x.clone()),
                            None => {
                                return err(format!("error calling index: index out of range: {n}"))
                            }
                        }
                    }
                    (None | Some(Value::Null), _) => {
                        return err("error calling index: index of untyped nil")
                    }
                    (Some(c), _) => {
                        return err(format!("can't index item of type {}", type_name(&c)))
                    }
                };
            }
            Ok(cur)
        }
        "truncate" => {
            arity(name, &args, 2)?;
            let n = args[1].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
            s(as_str(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            arity(name, &args, 3)?;
            let l = args[1].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
            let r = args[2].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
            s(format!(
                "{}{}{}",
                " ".repeat(l),
                as_str(&args[0]),
                " ".repeat(r)
            ))
        }
        "print" | "println" => {
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                let is_str = |v: &V| matches!(v, Some(Value::String(_)));
                if i > 0 && (name == "println" || !(is_str(a) || is_str(&args[i - 1]))) {
                    out.push(' ');
                }
                out.push_str(&as_str(a));
            }
            if name == "println" {
                out.push('\n');
            }
            s(out)
        }
        "printf" => {
            if args.is_empty() {
                return err("wrong number of args for printf");
            }
            s(printf(&as_str(&args[0]), &args[1..]))
        }
        "not" => {
            arity(name, &args, 1)?;
            Ok(Some(Value::Bool(!truthy(&args[0]))))
        }
        "and" => Ok(args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(None)),
        "or" => Ok(args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(None)),
        "eq" => {
            if args.len() < 2 {
                return err("missing argument for comparison");
            }
            let first = norm(&args[0]);
            Ok(Some(Value::Bool(
                args[1..].iter().any(|a| norm(a) == first),
            )))
        }
        "ne" => {
            arity(name, &args, 2)?;
            Ok(Some(Value::Bool(norm(&args[0]) != norm(&args[1]))))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let ord = match (norm(&args[0]), norm(&args[1])) {
                (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                (Value::String(a), Value::String(b)) => Some(a.cmp(&b)),
                _ => return err(format!("incompatible types for comparison in {name}")),
            };
            let ord = ord.ok_or_else(|| TemplateError("incomparable values".into()))?;
            let r = match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            };
            Ok(Some(Value::Bool(r)))
        }
        _ => err(format!("function {name:?} not defined")),
    }
}

fn norm(v: &V) -> Value {
    v.clone().unwrap_or(Value::Null)
}

fn printf(fmt: &str, args: &[V]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&go_json(&Value::String(
                it.next().map(as_str).unwrap_or_default(),
            ))),
            Some(_) => match it.next() {
                Some(a) => out.push_str(&as_str(a)),
                None => out.push_str("%!v(MISSING)"),
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

/// Go's `%v` of a decoded JSON value.
pub fn go_print(v: &V) -> String {
    match v {
        None => "<no value>".into(),
        Some(v) => go_print_value(v),
    }
}

fn go_print_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_print_value).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut kv: Vec<_> = m.iter().filter(|(k, _)| !k.starts_with("__")).collect();
            kv.sort_by(|a, b| a.0.cmp(b.0));
            format!(
                "map[{}]",
                kv.iter()
                    .map(|(k, v)| format!("{k}:{}", go_print_value(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

/// Go's `json.Marshal`: compact, with `<`, `>` and `&` escaped.
pub fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(&*visible(v)).unwrap_or_default();
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_and_nesting() {
        let v = json!({"ID": "abc", "State": {"Pid": 42, "Running": true}});
        assert_eq!(
            r("{{.ID}} {{.State.Pid}} {{.State.Running}}", &v),
            "abc 42 true"
        );
        assert_eq!(r("{{.Missing}}", &v), "<no value>");
    }

    #[test]
    fn functions() {
        let v = json!({"L": {"a": "1", "b<": "2"}, "N": ["x", "y"], "S": "Hi"});
        assert_eq!(r("{{json .L}}", &v), r#"{"a":"1","b\u003c":"2"}"#);
        assert_eq!(r(r#"{{index .L "a"}}"#, &v), "1");
        assert_eq!(r(r#"{{join .N ","}}"#, &v), "x,y");
        assert_eq!(r("{{upper .S}}{{lower .S}}{{.S | upper}}", &v), "HIhiHI");
        assert_eq!(r(r#"{{.S}}{{"\t"}}{{len .N}}"#, &v), "Hi\t2");
        assert_eq!(r("{{.L}} {{.N}}", &v), "map[a:1 b<:2] [x y]");
    }

    #[test]
    fn range_if_with_vars() {
        let v = json!({"R": {"runc": {"path": "r"}, "crun": {"path": "c"}}, "N": [1, 2], "E": []});
        assert_eq!(
            r("{{range $k, $v := .R}}{{$k}}={{$v.path}},{{end}}", &v),
            "crun=c,runc=r,"
        );
        assert_eq!(r("{{range .N}}<{{.}}>{{end}}", &v), "<1><2>");
        assert_eq!(r("{{range .E}}x{{else}}empty{{end}}", &v), "empty");
        assert_eq!(
            r(
                "{{if .N}}yes{{else}}no{{end}} {{if .E}}yes{{else if .N}}maybe{{end}}",
                &v
            ),
            "yes maybe"
        );
        assert_eq!(r("{{with .R.runc}}{{.path}}{{end}}", &v), "r");
        assert_eq!(r("{{if eq (len .N) 2}}two{{end}}", &v), "two");
        assert_eq!(r("{{- range .N }} {{.}} {{- end}}", &v), " 1 2");
    }

    #[test]
    fn methods_with_arguments() {
        let header = json!({ "__Label": HEADER_METHOD });
        assert_eq!(
            r(r#"{{.Label "com.example.my_app-name"}}"#, &header),
            "my app name"
        );
        let v = json!({"Labels": "a=1", "__Label": {"a": "1"}});
        assert_eq!(
            r(r#"{{.Label "a"}}|{{.Label "b"}}|{{"a" | .Label}}"#, &v),
            "1||1"
        );
        assert_eq!(
            r("{{json .}} {{.}}", &v),
            r#"{"Labels":"a=1"} map[Labels:a=1]"#
        );
        assert!(Template::parse("{{.Labels \"a\"}}")
            .unwrap()
            .render(&v)
            .is_err());
    }

    #[test]
    fn errors_are_reported() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{range .A}}").is_err());
        assert!(Template::parse("{{nosuch .A}}")
            .unwrap()
            .render(&json!({}))
            .is_err());
    }
}
