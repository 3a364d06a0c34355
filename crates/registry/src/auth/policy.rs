//! Which actions a user may take on a repository, from the configured rules.

use crate::config::AccessRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }

    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<AccessRule>,
}

fn pattern_matches(pattern: &str, repo: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => repo.starts_with(prefix),
        None => pattern == repo,
    }
}

impl Policy {
    pub fn new(rules: Vec<AccessRule>) -> Policy {
        Policy { rules }
    }

    /// Actions `user` (None: anonymous) may take on `repo`.
    pub fn allowed(&self, user: Option<&str>, repo: &str) -> Vec<Action> {
        if self.rules.is_empty() {
            return if user.is_some() {
                Action::ALL.to_vec()
            } else {
                Vec::new()
            };
        }
        let mut out = Vec::new();
        for rule in &self.rules {
            if !pattern_matches(&rule.repository, repo) {
                continue;
            }
            let user_matches = rule.users.iter().any(|u| match (u.as_str(), user) {
                ("anonymous", None) => true,
                ("*", Some(_)) => true,
                (name, Some(user)) => name == user,
                _ => false,
            });
            if !user_matches {
                continue;
            }
            for a in &rule.actions {
                let actions: Vec<Action> = if a == "*" {
                    Action::ALL.to_vec()
                } else {
                    Action::parse(a).into_iter().collect()
                };
                for act in actions {
                    if !out.contains(&act) {
                        out.push(act);
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The catalog lists every repository name, so it is open to any authenticated user.
    pub fn catalog_allowed(&self, user: Option<&str>) -> bool {
        user.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(repo: &str, users: &[&str], actions: &[&str]) -> AccessRule {
        AccessRule {
            repository: repo.into(),
            users: users.iter().map(|s| s.to_string()).collect(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn rules_combine() {
        let p = Policy::new(vec![
            rule("public/*", &["anonymous", "*"], &["pull"]),
            rule("*", &["admin"], &["*"]),
            rule("team/app", &["alice"], &["pull", "push"]),
        ]);
        assert_eq!(p.allowed(None, "public/x"), vec![Action::Pull]);
        assert!(p.allowed(None, "team/app").is_empty());
        assert_eq!(
            p.allowed(Some("alice"), "team/app"),
            vec![Action::Pull, Action::Push]
        );
        assert_eq!(p.allowed(Some("admin"), "x").len(), 3);
        assert_eq!(p.allowed(Some("bob"), "public/y"), vec![Action::Pull]);
        let open = Policy::default();
        assert_eq!(open.allowed(Some("u"), "x").len(), 3);
        assert!(open.allowed(None, "x").is_empty());
    }
}
