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
    {"mtad", "bare_lf", Type::Choice, "reject", "what to do with a bare CR or LF in message data", "reject normalize"},
    {"mtad", "catchall", Type::String, "", "address that receives mail for unknown local users (empty: reject them)"},
    {"mtad", "tls", Type::Bool, "yes", "offer STARTTLS when a certificate is configured"},
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
    {"mtad", "dns_servers", Type::List, "", "DNS servers for MX and address lookups, address[:port] (empty: those of /etc/resolv.conf)"},
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
};

constexpr std::string_view kDaemons[] = {"mtad", "mdad"};

}  // namespace

std::span<const KeySpec> schema() { return kSchema; }
std::span<const std::string_view> daemonSections() { return kDaemons; }

}  // namespace yubin::config
