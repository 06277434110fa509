#include "controller/serving/probes.h"

#include <gtest/gtest.h>

namespace eventbuffer::controller {
namespace {

struct Recorded : ResponseWriter {
  int status = 0;
  std::string body;
  void Send(int s, std::string_view, std::string b, const HeaderFields&) override {
    status = s;
    body = std::move(b);
  }
  bool Begin(int, std::string_view, const HeaderFields&) override { return false; }
  bool Write(std::string_view) override { return false; }
};

Recorded Get(const Probes& probes, const std::string& path) {
  HttpRequest r;
  r.method = "GET";
  r.path = r.target = path;
  Recorded w;
  probes.Handle(r, w);
  return w;
}

TEST(ProbesTest, ServesOnlyTheThreeProbePaths) {
  Probes probes({});
  for (const char* p : {"/livez", "/healthz", "/readyz"})
    EXPECT_EQ(Get(probes, p).status, 200) << p;
  for (const char* p : {"/metrics", "/apis", "/v1/objects", "/", "/livez/x", "/readyz?verbose"}) {
    const Recorded r = Get(probes, p);
    EXPECT_EQ(r.status, 404) << p;
    EXPECT_NE(r.body.find("\"kind\":\"Status\""), std::string::npos);
  }
}

TEST(ProbesTest, ReadyOnlyAfterTheFirstListAndNotWhileShuttingDown) {
  bool ready = false;
  Probes probes({.live = {}, .ready = [&] { return ready; }});
  EXPECT_EQ(Get(probes, "/readyz").status, 503);
  ready = true;
  EXPECT_EQ(Get(probes, "/readyz").status, 200);
  probes.BeginShutdown();
  const Recorded r = Get(probes, "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("shutting down"), std::string::npos);
  EXPECT_EQ(Get(probes, "/livez").status, 200) << "shutting down is not dead";
}

TEST(ProbesTest, LivenessReportsWhatIsStuck) {
  Probes probes({.live =
                     [](std::string* why) {
                       *why = "no watch progress for 10 minutes";
                       return false;
                     },
                 .ready = {}});
  const Recorded r = Get(probes, "/livez");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("no watch progress"), std::string::npos);
  EXPECT_EQ(Get(probes, "/healthz").status, 500);
}

}  // namespace
}  // namespace eventbuffer::controller
