// `artel token create|list|revoke`, `artel app add|list` and `artel keys create`: operator
// commands.
#include <cctype>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "common/signing.h"
#include "common/units.h"

namespace artel::cli {
namespace {

struct TokenFlags {
  Connection conn;
  std::string role, owner, expires, id;
  bool json = false;
};

// "2026-12-03 14:05 UTC" for a time in ms since the epoch; "-" for 0.
std::string FormatTimeMs(int64_t ms) {
  if (ms == 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// "admin", "submitter", "worker": the enum's name without its prefix.
std::string RoleName(v1::Role role) {
  std::string name = v1::Role_Name(role);
  if (name.rfind("ROLE_", 0) == 0) name = name.substr(5);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

nlohmann::json TokenJson(const v1::TokenInfo& t) {
  return nlohmann::json{{"id", t.id()},
                        {"role", RoleName(t.role())},
                        {"owner", t.owner()},
                        {"created_at_ms", t.created_at_ms()},
                        {"expires_at_ms", t.expires_at_ms()},
                        {"revoked_at_ms", t.revoked_at_ms()}};
}

struct AppFlags {
  Connection conn;
  std::string name, version, file, sign;
  bool json = false;
};

}  // namespace

void AddAdminCommands(CLI::App& app) {
  CLI::App* token = app.add_subcommand("token", "manage access tokens");
  token->require_subcommand(1);
  auto tf = std::make_shared<TokenFlags>();
  CLI::App* create = token->add_subcommand("create", "print a new token (needs an admin token)");
  AddConnectionOptions(create, &tf->conn);
  create->add_option("--role", tf->role, "submitter, worker or admin")->required();
  create->add_option("--owner", tf->owner,
                     "who holds it (a person or organisation; replicas of one task never run on "
                     "two workers of one owner) [the token's own id]");
  create->add_option("--expires", tf->expires,
                     "valid for this long, e.g. 30d, 12h, 90m [never expires]");
  create->callback([tf] {
    v1::Role role = v1::ROLE_UNSPECIFIED;
    if (tf->role == "submitter")
      role = v1::ROLE_SUBMITTER;
    else if (tf->role == "worker")
      role = v1::ROLE_WORKER;
    else if (tf->role == "admin")
      role = v1::ROLE_ADMIN;
    else
      Fail("unknown role '" + tf->role + "'; use submitter, worker or admin", 2);
    int64_t expires_ms = 0;
    if (!tf->expires.empty()) {
      absl::StatusOr<uint64_t> ms = ParseDurationMs(tf->expires);
      if (!ms.ok() || *ms == 0) {
        Fail("--expires '" + tf->expires + "' is not a duration; use e.g. 30d, 12h or 90m", 2);
      }
      expires_ms = static_cast<int64_t>(*ms);
    }
    v1::CreateTokenResponse created =
        OrFail(Connect(tf->conn)->CreateTokenFull(role, tf->owner, expires_ms));
    std::cout << created.token() << std::endl;
    std::cerr << "token " << created.info().id() << ": " << tf->role << ", owner "
              << created.info().owner() << ", "
              << (created.info().expires_at_ms() == 0
                      ? std::string("never expires")
                      : "expires " + FormatTimeMs(created.info().expires_at_ms()))
              << "; the secret above is shown only once" << std::endl;
  });

  auto tl = std::make_shared<TokenFlags>();
  CLI::App* tlist = token->add_subcommand("list", "list tokens (never their secrets)");
  AddConnectionOptions(tlist, &tl->conn);
  tlist->add_flag("--json", tl->json, "one JSON object per line");
  tlist->callback([tl] {
    v1::ListTokensResponse resp = OrFail(Connect(tl->conn)->ListTokens());
    if (!tl->json) {
      std::printf("%-12s %-9s %-20s %-20s %-20s %s\n", "ID", "ROLE", "OWNER", "CREATED", "EXPIRES",
                  "REVOKED");
    }
    for (const v1::TokenInfo& t : resp.tokens()) {
      if (tl->json) {
        std::cout << TokenJson(t).dump() << "\n";
        continue;
      }
      std::printf("%-12s %-9s %-20s %-20s %-20s %s\n", t.id().c_str(), RoleName(t.role()).c_str(),
                  t.owner().c_str(), FormatTimeMs(t.created_at_ms()).c_str(),
                  FormatTimeMs(t.expires_at_ms()).c_str(), FormatTimeMs(t.revoked_at_ms()).c_str());
    }
  });

  auto tr = std::make_shared<TokenFlags>();
  CLI::App* revoke =
      token->add_subcommand("revoke", "revoke a token: its next call fails (needs an admin token)");
  AddConnectionOptions(revoke, &tr->conn);
  revoke->add_option("id", tr->id, "the token's id, as `artel token list` shows it")->required();
  revoke->callback([tr] {
    v1::TokenInfo t = OrFail(Connect(tr->conn)->RevokeToken(tr->id));
    std::cout << "token " << t.id() << " (" << RoleName(t.role()) << ", owner " << t.owner()
              << ") revoked at " << FormatTimeMs(t.revoked_at_ms()) << std::endl;
  });

  CLI::App* apps = app.add_subcommand("app", "register and list apps");
  apps->require_subcommand(1);
  auto af = std::make_shared<AppFlags>();
  CLI::App* add =
      apps->add_subcommand("add", "register an executable (binary or script) as an app");
  AddConnectionOptions(add, &af->conn);
  add->add_option("name", af->name, "app name")->required();
  add->add_option("--version", af->version, "version label, e.g. 1 or 2.0")->required();
  add->add_option("file", af->file, "the executable")->required();
  add->add_option("--sign", af->sign,
                  "sign it with this private key (from `artel keys create`), for workers that "
                  "run only signed apps");
  add->callback([af] {
    const std::string key = af->sign.empty() ? "" : ReadPrivateKeyFile(af->sign, "--sign");
    v1::AppVersion a = OrFail(Connect(af->conn)->AddApp(af->name, af->version, af->file, key));
    std::cout << "registered app " << a.name() << " version " << a.version() << " ("
              << FormatBytes(a.size()) << ", sha256 " << a.digest().substr(0, 12)
              << (a.signature().empty() ? ", unsigned" : ", signed") << ")" << std::endl;
  });

  auto kf = std::make_shared<std::string>();
  CLI::App* keys = app.add_subcommand("keys", "the project's key pair for signing apps");
  keys->require_subcommand(1);
  CLI::App* keys_create = keys->add_subcommand(
      "create",
      "make an Ed25519 key pair: DIR/artel-app.key (private, keep it secret) and "
      "DIR/artel-app.pub (give it to coordinators and workers as --app-key)");
  keys_create->add_option("--out", *kf, "directory to write the two files into")->required();
  keys_create->callback([kf] {
    const std::filesystem::path dir = *kf;
    const auto priv = dir / "artel-app.key", pub = dir / "artel-app.pub";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) Fail("cannot create '" + dir.string() + "': " + ec.message(), 2);
    if (std::filesystem::exists(priv, ec) || std::filesystem::exists(pub, ec)) {
      Fail("'" + dir.string() +
               "' already holds a key pair; refusing to overwrite it. Choose "
               "another --out",
           2);
    }
    SigningKeyPair pair = OrFail(GenerateSigningKey());
    {
      std::ofstream out(priv, std::ios::binary);
      std::filesystem::permissions(
          priv, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
      out << pair.private_pem;
      if (!out) Fail("cannot write '" + priv.string() + "'");
    }
    std::ofstream(pub, std::ios::binary) << pair.public_pem;
    std::cout << "wrote " << priv.string() << " (private: sign apps with `artel app add --sign`)\n"
              << "wrote " << pub.string() << " (public: --app-key for coordinators and workers)\n"
              << "fingerprint " << OrFail(KeyFingerprint(pair.public_pem)) << std::endl;
  });
  CLI::App* list = apps->add_subcommand("list", "list registered apps");
  auto lf = std::make_shared<AppFlags>();
  AddConnectionOptions(list, &lf->conn);
  list->add_flag("--json", lf->json, "one JSON object per line");
  list->callback([lf] {
    v1::ListAppsResponse resp = OrFail(Connect(lf->conn)->ListApps());
    if (!lf->json) std::cout << "NAME                 VERSION      SIZE        DIGEST\n";
    for (const auto& a : resp.apps()) {
      if (lf->json) {
        std::cout << nlohmann::json{{"name", a.name()},
                                    {"version", a.version()},
                                    {"digest", a.digest()},
                                    {"size", a.size()}}
                         .dump()
                  << "\n";
      } else {
        std::printf("%-20s %-12s %-11s %s\n", a.name().c_str(), a.version().c_str(),
                    FormatBytes(a.size()).c_str(), a.digest().substr(0, 16).c_str());
      }
    }
  });
}

}  // namespace artel::cli
