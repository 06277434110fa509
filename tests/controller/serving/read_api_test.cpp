#include "controller/serving/read_api.h"

#include <gtest/gtest.h>

#include <map>

#include "controller/json_text.h"

namespace eventbuffer::controller {
namespace {

EventRef MakeRecord(const std::string& ns, const std::string& kind, const std::string& name,
                    const std::string& uid, const std::string& rv, const std::string& message) {
  using F = EventRecord::Field;
  EventRecord::Builder b;
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, rv)
      .Set(F::kInvolvedNamespace, ns)
      .Set(F::kInvolvedKind, kind)
      .Set(F::kInvolvedName, name)
      .Set(F::kReason, "BackOff")
      .Set(F::kType, "Warning")
      .Set(F::kMessage, message)
      .Set(F::kFirstTimestamp, "2024-05-01T10:00:00Z")
      .Set(F::kLastTimestamp, "2024-05-01T10:05:00Z")
      .Set(F::kSourceComponent, "kubelet")
      .Set(F::kSourceHost, "worker-1");
  b.numbers().count = 3;
  return std::make_shared<const EventRecord>(b.Build());
}

class ReadApiTest : public ::testing::Test {
 protected:
  ReadApiTest() {
    store_["ns/Pod/p1"] = {MakeRecord("ns", "Pod", "p1", "u1", "10", "first"),
                           MakeRecord("ns", "Pod", "p1", "u1", "11", "say \"hi\"\n\x01 é")};
    store_["/Node/n1"] = {MakeRecord("", "Node", "n1", "u2", "12", "node")};
    // An Event without involvedObject (the API server allows it): key "//".
    store_["//"] = {MakeRecord("", "", "", "u3", "13", "no object")};
    ReadApi::Hooks hooks;
    hooks.objects = [this] {
      std::vector<ObjectSummary> out;
      for (const auto& [key, events] : store_) {
        const auto& r = *events.front();
        out.push_back({std::string(r.involved_namespace()), std::string(r.involved_kind()),
                       std::string(r.involved_name()), events.size()});
      }
      return out;
    };
    hooks.read = [this](std::string_view key) {
      auto it = store_.find(std::string(key));
      return it == store_.end() ? std::vector<EventRef>{} : it->second;
    };
    hooks.buffer_status_json = [] { return std::string("{\"mode\":\"shadow\"}"); };
    hooks.watch_status_json = [] { return std::string("{\"state\":\"watching\"}"); };
    hooks.healthy = [this](std::string* why) {
      *why = "stuck";
      return healthy_;
    };
    hooks.ready = [this] { return ready_; };
    api_ = std::make_unique<ReadApi>(hooks);
  }

  std::map<std::string, std::vector<EventRef>> store_;
  bool healthy_ = true;
  bool ready_ = false;
  std::unique_ptr<ReadApi> api_;
};

TEST_F(ReadApiTest, EventsAreServedInOccurrenceOrderWithEscapedText) {
  const HttpReply reply = api_->Handle("GET", "/v1/events", "namespace=ns&kind=Pod&name=p1");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.content_type, "application/json");
  EXPECT_EQ(
      reply.body,
      R"({"key":"ns/Pod/p1","events":[)"
      R"({"uid":"u1","resourceVersion":"10","reason":"BackOff","type":"Warning","message":"first",)"
      R"("count":3,"firstTimestamp":"2024-05-01T10:00:00Z","lastTimestamp":"2024-05-01T10:05:00Z",)"
      R"("source":{"component":"kubelet","host":"worker-1"}},)"
      R"({"uid":"u1","resourceVersion":"11","reason":"BackOff","type":"Warning",)"
      R"("message":"say \"hi\"\n\u0001 é",)"
      R"("count":3,"firstTimestamp":"2024-05-01T10:00:00Z","lastTimestamp":"2024-05-01T10:05:00Z",)"
      R"("source":{"component":"kubelet","host":"worker-1"}}]})");
}

TEST_F(ReadApiTest, ClusterScopedObjectsHaveAnEmptyNamespace) {
  for (const char* query : {"kind=Node&name=n1", "namespace=&kind=Node&name=n1"}) {
    const HttpReply reply = api_->Handle("GET", "/v1/events", query);
    EXPECT_EQ(reply.status, 200);
    EXPECT_NE(reply.body.find(R"("key":"/Node/n1")"), std::string::npos) << query;
    EXPECT_NE(reply.body.find(R"("uid":"u2")"), std::string::npos) << query;
  }
}

TEST_F(ReadApiTest, PercentEncodedQueryIsDecoded) {
  const HttpReply reply = api_->Handle("GET", "/v1/events", "namespace=n%73&kind=Po%64&name=p1");
  EXPECT_EQ(reply.status, 200);
  EXPECT_NE(reply.body.find("\"first\""), std::string::npos);
}

TEST_F(ReadApiTest, UnknownObjectGivesAnEmptyList) {
  const HttpReply reply = api_->Handle("GET", "/v1/events", "namespace=ns&kind=Pod&name=zz");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, R"({"key":"ns/Pod/zz","events":[]})");
}

TEST_F(ReadApiTest, ObjectWithEmptyKindAndNameIsReadable) {
  // /v1/objects lists the object of an Event without involvedObject with an empty namespace,
  // kind and name; reading it back takes the same (empty, but present) parameters.
  const HttpReply objects = api_->Handle("GET", "/v1/objects", "");
  EXPECT_NE(objects.body.find(R"({"namespace":"","kind":"","name":"","events":1})"),
            std::string::npos)
      << objects.body;
  const HttpReply reply = api_->Handle("GET", "/v1/events", "namespace=&kind=&name=");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.body.rfind(R"({"key":"//","events":[{"uid":"u3")", 0), 0u) << reply.body;
}

TEST_F(ReadApiTest, BadQueriesGet400WithAJsonError) {
  for (const char* query : {"", "namespace=ns", "kind=Pod", "name=p1", "kind=Pod&name=a&x=1",
                            "kind=Pod&kind=Node&name=a", "kind=Pod&name=%zz", "kind=Pod&name=%4",
                            "namespace=a/b&kind=Pod&name=n"}) {
    const HttpReply reply = api_->Handle("GET", "/v1/events", query);
    EXPECT_EQ(reply.status, 400) << query;
    EXPECT_EQ(reply.body.rfind("{\"error\":\"", 0), 0u) << query << " " << reply.body;
  }
}

TEST_F(ReadApiTest, ObjectsAreListedSorted) {
  const HttpReply reply = api_->Handle("GET", "/v1/objects", "");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, R"({"objects":[{"namespace":"","kind":"","name":"","events":1},)"
                        R"({"namespace":"","kind":"Node","name":"n1","events":1},)"
                        R"({"namespace":"ns","kind":"Pod","name":"p1","events":2}]})");
}

TEST_F(ReadApiTest, UnknownPathIs404AndOtherMethods405) {
  EXPECT_EQ(api_->Handle("GET", "/v2/events", "").status, 404);
  EXPECT_EQ(api_->Handle("GET", "/", "").status, 404);
  EXPECT_EQ(api_->Handle("POST", "/v1/objects", "").status, 405);
}

TEST_F(ReadApiTest, ProbesFollowTheHooks) {
  EXPECT_EQ(api_->Handle("GET", "/readyz", "").status, 503);
  ready_ = true;
  EXPECT_EQ(api_->Handle("GET", "/readyz", "").status, 200);
  EXPECT_EQ(api_->Handle("GET", "/healthz", "").status, 200);
  healthy_ = false;
  const HttpReply reply = api_->Handle("GET", "/healthz", "");
  EXPECT_EQ(reply.status, 500);
  EXPECT_NE(reply.body.find("stuck"), std::string::npos);
}

TEST_F(ReadApiTest, StatusCombinesBufferAndWatch) {
  const HttpReply reply = api_->Handle("GET", "/v1/status", "");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, R"({"buffer":{"mode":"shadow"},"watch":{"state":"watching"}})");
}

TEST(JsonTextTest, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  AppendJsonString(&out, std::string_view("a\"b\\c\td\x1f\x7f\xe2\x9c\x93", 12));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\td\\u001f\x7f\xe2\x9c\x93\"");
}

}  // namespace
}  // namespace eventbuffer::controller
