// The schema: every section and key of yubin.conf, with type, default and a
// one-line description. This table is the truth the parser enforces and the
// man page check (tests/integration/test_docs.py) compares yubin.conf(5) to.
// A section of a daemon that does not exist yet is simply not here.
#include <array>

#include "config/config.hpp"
#include "yubin_build_config.h"

namespace yubin::config {
namespace {

constexpr KeySpec kSchema[] = {
    // [global]: shared by every program.
    {"global", "hostname", Type::String, "", "name this host uses in greetings and Received: (default: the system's host name)"},
    {"global", "domains", Type::List, nullptr, "local mail domains, comma-separated"},
    {"global", "users_file", Type::Path, YUBIN_SYSCONFDIR "/users", "the user database"},
    {"global", "aliases_file", Type::Path, YUBIN_SYSCONFDIR "/aliases", "the aliases file"},
    {"global", "postmaster", Type::String, "", "where mail for postmaster@<any local domain> goes when no user or alias takes it (empty: nowhere)"},
    {"global", "users_group", Type::String, "", "group that may read the users and aliases files; every daemon keeps it as its one supplementary group (empty: none)"},
    {"global", "mail_root", Type::Path, "/var/mail/yubin", "base folder for relative mailbox paths in the user database"},
    {"global", "spool_dir", Type::Path, "/var/spool/yubin", "the mail queue, owned by mtad"},
    {"global", "state_dir", Type::Path, "/var/lib/yubin", "persistent state (throttling, ids)"},
    {"global", "tls_cert", Type::Path, "", "PEM certificate chain for TLS listeners (empty: no TLS)"},
    {"global", "tls_key", Type::Path, "", "PEM private key matching tls_cert"},
    {"global", "log", Type::Choice, "syslog", "where programs log", "syslog stderr"},
    {"global", "log_level", Type::Choice, "info", "least severe level logged", "debug info notice warning error"},

    // [master]: yubin-master, the supervisor.
    {"master", "control_socket", Type::Path, "/run/yubin/control", "Unix socket yubinctl talks to"},
    {"master", "admin_group", Type::String, "yubin-admin", "group whose members may control the master (root always may)"},
    {"master", "pid_file", Type::Path, "/run/yubin/master.pid", "pid file written by yubinctl start"},
    {"master", "program_dir", Type::Path, YUBIN_LIBEXECDIR, "folder holding the daemon binaries"},
    {"master", "stop_timeout", Type::Duration, "30s", "how long sessions may finish on stop before the daemons are killed"},
    {"master", "restart_delay_max", Type::Duration, "60s", "cap of the exponential backoff between restarts of a daemon"},

    // [mtad]: SMTP on port 25 and the queue.
    {"mtad", "user", Type::String, "yubin-mta", "user mtad runs as"},
    {"mtad", "group", Type::String, "yubin-mta", "group mtad runs as"},
    {"mtad", "chroot", Type::Path, "", "folder mtad chroots into (empty: none)"},
    {"mtad", "listen", Type::Listen, "0.0.0.0:25, [::]:25", "SMTP listening addresses"},
    {"mtad", "max_message_size", Type::Size, "35M", "largest message accepted (SIZE)"},
    {"mtad", "max_recipients", Type::Int, "1000", "recipients per transaction"},
    {"mtad", "max_errors", Type::Int, "10", "protocol errors per session before disconnecting"},
    {"mtad", "max_connections", Type::Int, "10000", "concurrent SMTP sessions"},
    {"mtad", "max_connections_per_ip", Type::Int, "50", "concurrent SMTP sessions per client address"},
    {"mtad", "command_timeout", Type::Duration, "5m", "idle time allowed while waiting for a command"},
    {"mtad", "data_timeout", Type::Duration, "3m", "idle time allowed while receiving message data"},
    {"mtad", "data_min_rate", Type::Int, "500", "slowest message transfer (DATA, BDAT) tolerated, in octets per second: each read earns octets/rate seconds towards a deadline at most data_timeout ahead (Postfix: smtpd_min_data_rate); 0: data_timeout per read only"},
    {"mtad", "bare_lf", Type::Choice, "reject", "what to do with a bare CR or LF in message data", "reject normalize"},
    {"mtad", "catchall", Type::String, "", "address that receives mail for unknown local users (empty: reject them)"},
    {"mtad", "tls", Type::Bool, "yes", "offer STARTTLS when a certificate is configured"},
    {"mtad", "submission_socket", Type::UnixListen, "", "Unix socket msad hands submitted messages to (empty: none; msad needs one, e.g. /run/yubin/submission)"},
    {"mtad", "submission_socket_mode", Type::Mode, "0660", "mode of the submission socket"},
    {"mtad", "submission_socket_group", Type::String, "yubin-msa", "group of the submission socket (msad's group: only msad may connect)"},
    {"mtad", "lmtp_socket", Type::Path, "/run/yubin/lmtp", "mdad's LMTP socket that local mail is delivered to"},
    {"mtad", "lmtp_connections", Type::Int, "10", "concurrent LMTP deliveries to mdad"},
    {"mtad", "retry_min", Type::Duration, "5m", "first retry delay after a temporary failure (doubles each time)"},
    {"mtad", "retry_max", Type::Duration, "1h", "longest delay between two delivery attempts"},
    {"mtad", "max_queue_lifetime", Type::Duration, "5d", "how long a message may wait in the queue before it is bounced"},
    {"mtad", "delay_warning", Type::Duration, "4h", "age of a message still deferred at which the sender gets one delay report (0: never)"},
    {"mtad", "remote_delivery", Type::Bool, "yes", "deliver mail for other domains over SMTP (no: it stays queued)"},
    {"mtad", "remote_port", Type::Int, "25", "TCP port of the remote mail servers"},
    {"mtad", "remote_connections", Type::Int, "100", "outgoing SMTP connections at once, in all"},
    {"mtad", "remote_connections_per_domain", Type::Int, "10", "outgoing SMTP connections at once to one destination"},
    {"mtad", "remote_connect_timeout", Type::Duration, "30s", "longest wait for a TCP connection to a remote server"},
    {"mtad", "remote_connection_cache_time", Type::Duration, "2s", "how long an outgoing SMTP connection with no message waiting is kept open for the next one to its destination (Postfix: smtp_connection_cache_time_limit); 0: closed at once"},
    {"mtad", "state_save_retry", Type::Duration, "30s", "wait before a delivery state that could not be saved (disk full) is saved again; the message waits meanwhile"},
    {"mtad", "dns_servers", Type::List, "", "DNS servers for MX and address lookups, address[:port] (empty: those of /etc/resolv.conf)"},
    {"mtad", "dns_cache_size", Type::Int, "10000", "DNS answers kept in memory for their TTL (at most 1h; NXDOMAIN and no-record answers at most 15m, failures 5s); 0: no cache"},
    {"mtad", "tls_policy", Type::Choice, "may", "STARTTLS to remote servers: none, may (when offered, unverified), encrypt (required), verify (required, certificate and name checked)", "none may encrypt verify"},
    {"mtad", "tls_domain_policy", Type::List, "", "per-domain exceptions to tls_policy, as domain=policy"},
    {"mtad", "tls_ca_file", Type::Path, "", "PEM file of CA certificates trusted for verify, besides the system store"},
    {"mtad", "relay_host", Type::String, "", "send all remote mail through this host: host[:port] (MX lookup), [host]:port or address:port (none); empty: direct"},
    {"mtad", "relay_tls", Type::Choice, "starttls", "TLS to the relay host: starttls (required), implicit (TLS from the start, port 465) or none", "starttls implicit none"},
    {"mtad", "relay_tls_verify", Type::Bool, "yes", "check the relay host's certificate and name"},
    {"mtad", "relay_auth_file", Type::Path, "", "file with one line \"user password\" for AUTH at the relay host, mode 0600 (empty: no AUTH)"},

    // [mdad]: local delivery.
    {"mdad", "user", Type::String, "yubin-mail", "user mdad runs as (owns the mailboxes)"},
    {"mdad", "group", Type::String, "yubin-mail", "group mdad runs as"},
    {"mdad", "lmtp_socket", Type::UnixListen, "/run/yubin/lmtp", "LMTP Unix socket"},
    {"mdad", "lmtp_socket_mode", Type::Mode, "0660", "mode of the LMTP socket"},
    {"mdad", "lmtp_socket_group", Type::String, "yubin-mta", "group of the LMTP socket (the MTA's group)"},
    {"mdad", "max_message_size", Type::Size, "64M", "largest message accepted"},
    {"mdad", "quota_temporary", Type::Bool, "no", "over-quota replies 452 4.2.2 instead of 552 5.2.2"},
    {"mdad", "tmp_dir", Type::Path, "", "private folder for messages being delivered (empty: <state_dir>/mdad-tmp)"},
    {"mdad", "lock_timeout", Type::Duration, "10s", "longest wait for an mbox lock before a temporary failure"},
    {"mdad", "max_connections", Type::Int, "100", "concurrent LMTP sessions"},
    {"mdad", "delivery_workers", Type::Int, "4", "threads that write the mailbox copies, so that several LMTP sessions deliver at once (read at start)"},

    // [mrad]: POP3 (IMAP later); a login process and a mail process.
    {"mrad", "user", Type::String, "yubin-login", "user of the login process (TLS, commands before login); must not own mail"},
    {"mrad", "group", Type::String, "yubin-login", "group of the login process"},
    {"mrad", "chroot", Type::Path, "", "folder the login process chroots into (empty: none)"},
    {"mrad", "mail_user", Type::String, "yubin-mail", "user of the mail process, which opens the mailboxes (the owner of the mail, as [mdad] user)"},
    {"mrad", "mail_group", Type::String, "yubin-mail", "group of the mail process"},
    {"mrad", "pop3_listen", Type::Listen, "0.0.0.0:110, [::]:110", "POP3 listening addresses (STLS offered when a certificate is configured)"},
    {"mrad", "pop3s_listen", Type::Listen, "0.0.0.0:995, [::]:995", "POP3 over implicit TLS listening addresses (needs tls_cert)"},
    {"mrad", "loopback_plaintext", Type::Bool, "yes", "allow USER/PASS and AUTH without TLS from loopback addresses"},
    {"mrad", "max_connections", Type::Int, "1000", "concurrent sessions"},
    {"mrad", "max_connections_per_ip", Type::Int, "20", "concurrent sessions per client address"},
    {"mrad", "pop3_idle_timeout", Type::Duration, "10m", "idle time allowed between POP3 commands (RFC 1939: at least 10 minutes)"},
    {"mrad", "imap_listen", Type::Listen, "0.0.0.0:143, [::]:143", "IMAP listening addresses (STARTTLS offered when a certificate is configured)"},
    {"mrad", "imaps_listen", Type::Listen, "0.0.0.0:993, [::]:993", "IMAP over implicit TLS listening addresses (needs tls_cert)"},
    {"mrad", "imap_idle_timeout", Type::Duration, "30m", "idle time allowed to a logged-in IMAP client; IDLE restarts it (RFC 3501: at least 30 minutes)"},
    {"mrad", "max_imap_sessions_per_user", Type::Int, "20", "concurrent IMAP sessions of one user (read at start)"},
    {"mrad", "lock_timeout", Type::Duration, "5s", "longest wait for an mbox lock when a session opens or updates an mbox (read at start)"},
    {"mrad", "auth_cache_size", Type::Int, "1000", "users whose last successful password check is remembered, so the same password is not checked with Argon2id again (0: no cache; read at start)"},
    {"mrad", "auth_cache_ttl", Type::Duration, "1h", "how long a successful password check is remembered (read at start)"},
    {"mrad", "mail_processes", Type::Int, "0", "mail processes; each user is served by one of them, chosen by a hash of the user name (0: one per online CPU; read at start)"},
    {"mrad", "imap_commit_gate", Type::Path, "", "tests only: a Unix socket to which each blocking step of an IMAP APPEND's commit first connects, and waits for one byte (empty: none; read at start)"},
    // [msad]: SMTP submission with AUTH; hands messages to mtad.
    {"msad", "user", Type::String, "yubin-msa", "user msad runs as"},
    {"msad", "group", Type::String, "yubin-msa", "group msad runs as (the group of mtad's submission socket)"},
    {"msad", "chroot", Type::Path, "", "folder msad chroots into (empty: none)"},
    {"msad", "listen", Type::Listen, "0.0.0.0:587, [::]:587", "submission listening addresses (STARTTLS offered when a certificate is configured)"},
    {"msad", "listen_tls", Type::Listen, "0.0.0.0:465, [::]:465", "submission over implicit TLS listening addresses (needs tls_cert)"},
    {"msad", "mtad_socket", Type::Path, "/run/yubin/submission", "mtad's submission socket ([mtad] submission_socket) that messages are handed to"},
    {"msad", "loopback_plaintext", Type::Bool, "no", "offer and accept AUTH without TLS from loopback addresses"},
    {"msad", "max_message_size", Type::Size, "35M", "largest message accepted (SIZE)"},
    {"msad", "max_recipients", Type::Int, "100", "recipients per message"},
    {"msad", "max_errors", Type::Int, "10", "protocol errors (failed logins included) per session before disconnecting"},
    {"msad", "max_connections", Type::Int, "1000", "concurrent sessions"},
    {"msad", "max_connections_per_ip", Type::Int, "20", "concurrent sessions per client address"},
    {"msad", "command_timeout", Type::Duration, "5m", "idle time allowed while waiting for a command"},
    {"msad", "data_timeout", Type::Duration, "3m", "idle time allowed while receiving message data"},
    {"msad", "data_min_rate", Type::Int, "500", "slowest message transfer (DATA, BDAT) tolerated, in octets per second: each read earns octets/rate seconds towards a deadline at most data_timeout ahead (Postfix: smtpd_min_data_rate); 0: data_timeout per read only"},
    {"msad", "auth_workers", Type::Int, "2", "threads that check passwords (each Argon2id check may use 64 MiB)"},
    {"msad", "auth_cache_size", Type::Int, "1000", "users whose last successful password check is remembered, so the same password is not checked with Argon2id again (0: no cache; read at start)"},
    {"msad", "auth_cache_ttl", Type::Duration, "1h", "how long a successful password check is remembered (read at start)"},
    {"msad", "auth_delay_ms", Type::Int, "1000", "delay before answering a failed login, in milliseconds; it doubles with each further failure from the address or for the account"},
    {"msad", "auth_max_delay", Type::Duration, "15s", "longest delay before answering a failed login"},
    {"msad", "auth_lockout", Type::Int, "10", "failed logins from one address within auth_window after which it gets 421 and is disconnected (0: never)"},
    {"msad", "auth_account_lockout", Type::Int, "30", "failed logins for one account within auth_window after which its logins get 421 (0: never)"},
    {"msad", "auth_window", Type::Duration, "15m", "how long a failed login counts"},
    {"msad", "rate_messages", Type::Int, "200", "messages one user may send per hour (0: no limit)"},
    {"msad", "rate_recipients", Type::Int, "1000", "recipients one user may send to per hour (0: no limit)"},

    // [sendmail]: yubin-sendmail and mtad's maildrop pickup (not a daemon).
    {"sendmail", "trusted_users", Type::List, "", "local users besides root whose -f (envelope sender) is honoured; for others it is ignored and logged"},
    {"sendmail", "maildrop_group", Type::String, "yubin-drop", "group of the maildrop folder (<spool_dir>/maildrop) that yubin-postdrop is set-group-ID to"},
    {"sendmail", "qualify_domain", Type::String, "", "domain appended to bare user names, senders and recipients (empty: [global] hostname)"},
    {"sendmail", "postdrop", Type::Path, YUBIN_LIBEXECDIR "/yubin-postdrop", "the set-group-ID program that writes into the maildrop for users other than root"},
};

constexpr std::string_view kDaemons[] = {"mtad", "mdad", "mrad", "msad"};

}  // namespace

std::span<const KeySpec> schema() { return kSchema; }
std::span<const std::string_view> daemonSections() { return kDaemons; }

}  // namespace yubin::config
