//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "vestibule",
    version,
    about = "An audited SSH jump box for the stock OpenSSH client"
)]
pub struct Cli {
    /// The data dir (configuration, keys, database). Default: /var/lib/vestibule
    /// for root, else $XDG_DATA_HOME/vestibule or ~/.local/share/vestibule.
    #[arg(long, global = true, env = "VESTIBULE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a data dir: configuration, host and gateway keys, database.
    Init,
    /// Run the gateway (initialising the data dir first if there is none).
    Serve(ServeArgs),
    /// Print the authorized_keys line that targets must trust.
    GatewayKey,
    /// Manage people.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage targets.
    #[command(subcommand)]
    Target(TargetCommand),
    /// Emergency access tokens for when the usual factors are unavailable.
    #[command(subcommand)]
    Breakglass(BreakglassCommand),
    /// Manage roles and who holds them.
    #[command(subcommand)]
    Role(RoleCommand),
    /// The SSH certificate authorities: export and rotate.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Print an ssh_config snippet for reaching targets through this gateway.
    SshConfig(SshConfigArgs),
    /// Get a short-lived SSH certificate from a gateway (runs on your machine).
    Login(LoginArgs),
    /// Cedar policies: validate, explain a decision, print the schema.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Locks: stop a person, a target or a role's holders at once.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Live sessions: list and end them.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Just-in-time access requests.
    #[command(subcommand)]
    Request(RequestCommand),
    /// Session recordings: list, verify, export, legal hold, retention.
    #[command(subcommand)]
    Recordings(vestibule_recording::cli::RecordingsCommand),
    /// Replay a recording in the terminal.
    Play(vestibule_recording::cli::PlayArgs),
    /// The audit trail: verify its chain, search it, print its public key.
    #[command(subcommand)]
    Audit(vestibule_audit::cli::AuditCommand),
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate the policy files against the schema (file:line:column on error).
    Check,
    /// Print the decision for a request and the policies that took it.
    Explain {
        #[arg(long)]
        user: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        login: String,
        /// ssh.shell, ssh.exec, ssh.sftp, ssh.port_forward, request.create, request.approve.
        #[arg(long, default_value = "ssh.shell")]
        action: String,
        /// Context values: source_ip=10.0.0.1, ticket=INC-1, auth_method=password,
        /// mfa=true, time=2026-11-28T10:00:00Z, command=uptime, grant=ID,
        /// destination=host:port, requester=NAME (repeatable).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the Cedar schema policies are validated against.
    Schema,
    /// Print the Cedar policies the roles stand for.
    Roles,
}

#[derive(Subcommand)]
pub enum LockCommand {
    /// Lock a person, a target or a role: live sessions end, new ones are refused.
    Add {
        #[arg(long, group = "what", required = true)]
        user: Option<String>,
        #[arg(long, group = "what")]
        target: Option<String>,
        #[arg(long, group = "what")]
        role: Option<String>,
        /// How long, e.g. 2h, 30m (default: until removed).
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        reason: String,
    },
    List(ListArgs),
    Remove {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// Live sessions: who, target, login, since, bytes, ticket.
    List(ListArgs),
    /// Follow a live session's recording read-only.
    Watch(vestibule_recording::cli::WatchArgs),
    /// End a live session (the person sees the reason).
    Kill {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum RequestCommand {
    /// File a request for access to a target as a login.
    Create {
        /// Who asks (a registered person).
        #[arg(long)]
        user: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        login: String,
        /// How long the grant lasts once approved, e.g. 1h.
        #[arg(long, default_value = "1h")]
        duration: String,
        #[arg(long)]
        reason: String,
    },
    /// Pending and active requests (all with --all).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Approve a request as a person whom policy lets approve it.
    Approve {
        id: String,
        /// The approving person.
        #[arg(long = "as", value_name = "PERSON")]
        approver: String,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long = "as", value_name = "PERSON")]
        approver: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CaKindArg {
    User,
    Host,
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Print a CA's trusted public keys (both during a rotation).
    Export {
        kind: CaKindArg,
        /// Print `@cert-authority *` known_hosts lines (host CA only).
        #[arg(long)]
        known_hosts: bool,
    },
    /// Start a rotation (add a new key that signs from now on, trusted beside the
    /// old), or finish it (stop trusting the old key).
    /// List the most recent certificates the CAs issued.
    Issued {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Revoke a person's certificate by serial (as `vestibule login` and the
    /// audit log show it); the gateway refuses it from then on.
    Revoke {
        serial: u64,
        #[arg(long)]
        reason: String,
    },
    Rotate {
        /// Which CA; with --finish and no KIND, every rotation in progress.
        #[arg(required_unless_present = "finish")]
        kind: Option<CaKindArg>,
        #[arg(long)]
        finish: bool,
    },
}

#[derive(Args)]
pub struct SshConfigArgs {
    /// The person the snippet is for (their gateway user name).
    #[arg(long)]
    pub user: Option<String>,
    /// The gateway's host name as clients reach it.
    #[arg(long, default_value = "bastion")]
    pub host: String,
    /// The gateway's SSH port (default: ssh.listen's port).
    #[arg(long)]
    pub port: Option<u16>,
    /// The known_hosts file holding `vestibule ca export host --known-hosts`.
    #[arg(long, default_value = "~/.ssh/vestibule_known_hosts")]
    pub known_hosts: String,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address for the SSH listener (overrides ssh.listen). Port 0 picks a free port.
    #[arg(long)]
    pub ssh_listen: Option<SocketAddr>,
    /// Address for the HTTPS API (overrides http.listen). Port 0 picks a free port.
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
}

#[derive(Args)]
pub struct LoginArgs {
    /// The gateway's HTTPS API, HOST:PORT.
    #[arg(long)]
    pub proxy: String,
    /// Your gateway user name.
    #[arg(long)]
    pub user: String,
    /// Prove who you are with this private key, registered on the gateway
    /// (default: the password, read from standard input).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Certificate lifetime, e.g. 8h, 30m (default: the gateway's).
    #[arg(long)]
    pub ttl: Option<String>,
    /// The gateway's TLS certificate fingerprint (SHA256:...) as `serve` prints it.
    /// Remembered in ~/.vestibule/known_proxies after the first login.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Where to write the key and certificate (default ~/.vestibule/keys).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Log in by single sign-on: open (or print) a link to complete in a
    /// browser; the identity provider must name the same --user.
    #[arg(long, conflicts_with = "identity")]
    pub sso: bool,
    /// The current code of your authenticator app, if you enrolled one
    /// (default: a second line on standard input after the password).
    #[arg(long, value_name = "CODE")]
    pub totp_code: Option<String>,
    /// Log in with a break-glass token (from VESTIBULE_BREAKGLASS_TOKEN, else
    /// read from standard input); it works once.
    #[arg(long, conflicts_with_all = ["identity", "sso", "totp_code"])]
    pub breakglass: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Register a person.
    Add {
        name: String,
        /// An OpenSSH public key file (repeatable).
        #[arg(long = "public-key", value_name = "FILE")]
        public_keys: Vec<PathBuf>,
        /// Read a password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    List(ListArgs),
    Remove {
        name: String,
    },
    /// A person's TOTP second factor.
    #[command(subcommand)]
    Mfa(MfaCommand),
}

#[derive(Subcommand)]
pub enum MfaCommand {
    /// Give a person a new TOTP secret (replacing any) and print it as an
    /// otpauth:// URI and a QR code for an authenticator app.
    Enroll { name: String },
    /// Remove a person's second factor.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum BreakglassCommand {
    /// Issue a one-time token that lets ACCOUNT in by SSH password login; printed once.
    Issue {
        #[arg(long)]
        account: String,
        /// How long the token is valid, e.g. 24h, 30m.
        #[arg(long, default_value = "24h")]
        ttl: String,
        #[arg(long)]
        reason: String,
    },
    /// Tokens issued, with when (if ever) each was used.
    List(ListArgs),
}

#[derive(Subcommand)]
pub enum TargetCommand {
    /// Register a host people may reach through the gateway.
    Add {
        name: String,
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// The login used when the person names none.
        #[arg(long)]
        login: Option<String>,
        /// A label key=value (repeatable), for role selectors.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// The target's host key, as in known_hosts: "ssh-ed25519 AAAA...".
        #[arg(
            long,
            conflicts_with_all = ["trust_on_first_use", "host_ca", "global_host_ca"],
            required_unless_present_any = ["trust_on_first_use", "host_ca", "global_host_ca"]
        )]
        host_key: Option<String>,
        /// Record the key the target presents at first contact and pin it.
        #[arg(long, conflicts_with_all = ["host_ca", "global_host_ca"])]
        trust_on_first_use: bool,
        /// Verify the target by its host certificate, signed by a CA key in FILE
        /// (public key lines, or known_hosts `@cert-authority` lines).
        #[arg(long, value_name = "FILE", conflicts_with = "global_host_ca")]
        host_ca: Option<PathBuf>,
        /// Verify the target by its host certificate, signed by a CA in the
        /// gateway-wide list (`ssh.target_host_cas` in the configuration).
        #[arg(long)]
        global_host_ca: bool,
        /// Log in with the gateway's static key (`vestibule gateway-key` in the
        /// target's authorized_keys) instead of a per-session certificate.
        #[arg(long)]
        static_key: bool,
    },
    List(ListArgs),
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Define a role: which targets, as which logins.
    Add {
        name: String,
        /// `*`, target names, or label matches such as env=staging (comma-separated).
        #[arg(long)]
        targets: String,
        /// Logins on those targets, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        logins: Vec<String>,
        /// Allow `ssh -L` through those targets.
        #[arg(long)]
        allow_port_forwarding: bool,
        /// Holders must log in with a second factor (those without one enrol
        /// at their next login); the role's policies also require `context.mfa`.
        #[arg(long)]
        require_mfa: bool,
    },
    /// Give a role to a person.
    Grant {
        role: String,
        user: String,
    },
    /// Take a role from a person.
    Revoke {
        role: String,
        user: String,
    },
    List(ListArgs),
    Remove {
        name: String,
    },
}
