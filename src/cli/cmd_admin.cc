// `artel token create` and `artel app add|list`: operator commands.
#include <iostream>

#include "cli/cli_common.h"
#include "common/units.h"

namespace artel::cli {
namespace {

struct TokenFlags {
  Connection conn;
  std::string role;
};

struct AppFlags {
  Connection conn;
  std::string name, version, file;
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
    std::cout << OrFail(Connect(tf->conn)->CreateToken(role)) << std::endl;
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
  add->callback([af] {
    v1::AppVersion a = OrFail(Connect(af->conn)->AddApp(af->name, af->version, af->file));
    std::cout << "registered app " << a.name() << " version " << a.version() << " ("
              << FormatBytes(a.size()) << ", sha256 " << a.digest().substr(0, 12) << ")"
              << std::endl;
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
