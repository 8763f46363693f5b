// The C++ QuickFIX side of Nexus's FIX benchmarks (docs/benchmarks.md).
//
//   quickfix_bench codec MESSAGES DICTIONARY [REPEATS] [MIN_MS]
//   quickfix_bench roundtrip DICTIONARY [ORDERS] [WARMUP] [SAMPLES]
//
// codec: parses and encodes the messages in MESSAGES (one FIX message a line, as
// `nexus bench fix-codec` writes them) the way the Nexus side does, on one thread,
// and prints one JSON object a line: messages/s, the median of REPEATS rounds of at
// least MIN_MS milliseconds each.
//
// roundtrip: a SocketInitiator and a SocketAcceptor on 127.0.0.1 (memory stores, no
// logs); the acceptor answers each NewOrderSingle with an ExecutionReport (new); the
// initiator sends one order at a time and times NewOrderSingle out to ExecutionReport
// back. Prints one JSON object with the percentiles in microseconds, and writes the
// samples (nanoseconds, one a line) to SAMPLES when given.
//
// Built by `make quickfix-cpp` (C++14, -O2, Debian's libquickfix-dev 1.15.1).

#include <quickfix/DataDictionary.h>
#include <quickfix/FieldConvertors.h>
#include <quickfix/Group.h>
#include <quickfix/MessageStore.h>
#include <quickfix/Message.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketAcceptor.h>
#include <quickfix/SocketInitiator.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char SOH = '\x01';

// Parties (453): the one repeating group in the benchmark messages, delimited by
// PartyID (448).
const int NO_PARTY_IDS = 453;
const int PARTY_ID = 448;

bool is_party_field(int tag) { return tag == PARTY_ID || tag == 447 || tag == 452; }

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `pass` (which handles `count` messages) in REPEATS rounds of at least
// `min_seconds`; returns the median messages/second.
double median_rate(const std::function<long()>& pass, size_t count, int repeats,
                   double min_seconds) {
  volatile long sink = 0;
  for (int i = 0; i < 3; ++i) sink = sink + pass();  // warm up
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    Clock::time_point start = Clock::now();
    size_t messages = 0;
    double elapsed = 0;
    do {
      sink = sink + pass();
      messages += count;
      elapsed = seconds_since(start);
    } while (elapsed < min_seconds);
    rates.push_back(messages / elapsed);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// One benchmark message split into what an application holds before encoding it.
struct Fields {
  std::string raw;
  std::string msg_type;
  std::vector<std::pair<int, std::string>> header;  // 49, 56, 52 (not 8, 9, 35, 34)
  int seq_num = 0;
  std::vector<std::pair<int, std::string>> body;    // wire order, group fields included
};

Fields split(const std::string& raw) {
  Fields f;
  f.raw = raw;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t eq = raw.find('=', pos);
    size_t end = raw.find(SOH, pos);
    if (eq == std::string::npos || end == std::string::npos || eq > end)
      throw std::runtime_error("not a FIX message: " + raw.substr(0, 40));
    int tag = std::atoi(raw.substr(pos, eq - pos).c_str());
    std::string value = raw.substr(eq + 1, end - eq - 1);
    pos = end + 1;
    if (tag == 8 || tag == 9 || tag == 10) continue;
    if (tag == 35)
      f.msg_type = value;
    else if (tag == 34)
      f.seq_num = std::atoi(value.c_str());
    else if (tag == 49 || tag == 56 || tag == 52)
      f.header.emplace_back(tag, value);
    else
      f.body.emplace_back(tag, value);
  }
  return f;
}

// Builds `f` into `message` (cleared first) and writes it, BodyLength and CheckSum
// computed, into `out`. Returns the length.
long encode(const Fields& f, FIX::Message& message, std::string& out) {
  message.clear();
  FIX::Header& header = message.getHeader();
  header.setField(FIX::FIELD::BeginString, "FIX.4.4");
  header.setField(FIX::FIELD::MsgType, f.msg_type);
  header.setField(FIX::MsgSeqNum(f.seq_num));
  for (const auto& field : f.header) header.setField(field.first, field.second);
  for (size_t i = 0; i < f.body.size(); ++i) {
    const auto& field = f.body[i];
    if (field.first != NO_PARTY_IDS) {
      message.setField(field.first, field.second);
      continue;
    }
    FIX::Group party(NO_PARTY_IDS, PARTY_ID);
    bool open = false;
    while (i + 1 < f.body.size() && is_party_field(f.body[i + 1].first)) {
      ++i;
      if (f.body[i].first == PARTY_ID && open) {
        message.addGroup(party);
        party.clear();
      }
      party.setField(f.body[i].first, f.body[i].second);
      open = true;
    }
    if (open) message.addGroup(party);
  }
  message.toString(out);
  return static_cast<long>(out.size());
}

long read_str(const FIX::FieldMap& map, int tag) {
  return static_cast<long>(map.getField(tag).size());
}
long read_char(const FIX::FieldMap& map, int tag) {
  return FIX::CharConvertor::convert(map.getField(tag));
}
long read_qty(const FIX::FieldMap& map, int tag) {
  return static_cast<long>(FIX::DoubleConvertor::convert(map.getField(tag)));
}
long read_seq(const FIX::Message& message) {
  return FIX::IntConvertor::convert(message.getHeader().getField(FIX::FIELD::MsgSeqNum));
}

// The typed fields the Nexus side reads from a NewOrderSingle.
long read_order(const FIX::Message& m) {
  long n = read_seq(m) + read_str(m, 11) + read_str(m, 55) + read_char(m, 54) +
           read_qty(m, 38) + read_char(m, 40) + read_qty(m, 44);
  size_t parties = m.groupCount(NO_PARTY_IDS);
  for (size_t i = 1; i <= parties; ++i) n += read_str(m.getGroupRef(i, NO_PARTY_IDS), PARTY_ID);
  return n;
}

// The typed fields the Nexus side reads from an ExecutionReport.
long read_execution(const FIX::Message& m) {
  return read_seq(m) + read_str(m, 37) + read_str(m, 11) + read_str(m, 17) + read_char(m, 150) +
         read_char(m, 39) + read_str(m, 55) + read_char(m, 54) + read_qty(m, 38) +
         read_qty(m, 32) + read_qty(m, 31) + read_qty(m, 151) + read_qty(m, 14) + read_qty(m, 6);
}

std::string name_of(const std::string& msg_type) {
  return msg_type == "D" ? "NewOrderSingle" : msg_type == "8" ? "ExecutionReport" : msg_type;
}

void print_rate(const char* what, const std::string& msg_type, double rate, size_t count,
                int repeats) {
  std::printf(
      "{\"mode\": \"codec\", \"case\": \"%s\", \"message\": \"%s\", \"rate\": %.1f, "
      "\"messages\": %zu, \"repeats\": %d}\n",
      what, name_of(msg_type).c_str(), rate, count, repeats);
  std::fflush(stdout);
}

int codec(const std::string& messages_path, const std::string& dictionary_path, int repeats,
          double min_seconds) {
  FIX::DataDictionary dictionary(dictionary_path);
  std::ifstream in(messages_path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + messages_path);
  std::vector<std::string> types;
  std::vector<std::vector<Fields>> by_type;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Fields f = split(line);
    size_t t = std::find(types.begin(), types.end(), f.msg_type) - types.begin();
    if (t == types.size()) {
      types.push_back(f.msg_type);
      by_type.emplace_back();
    }
    by_type[t].push_back(std::move(f));
  }
  for (size_t t = 0; t < types.size(); ++t) {
    const std::vector<Fields>& messages = by_type[t];
    long (*read)(const FIX::Message&) = types[t] == "D" ? read_order : read_execution;
    FIX::Message message;
    std::string out;
    // The same answers as the input, or the comparison is meaningless: QuickFIX writes
    // body fields in tag order, so the bytes differ but the length and sum do not.
    for (const Fields& f : messages) {
      message.setString(f.raw, true, &dictionary, &dictionary);
      dictionary.validate(message);
      read(message);
      encode(f, message, out);
      FIX::Message again(out, dictionary, true);
      if (out.size() != f.raw.size() ||
          again.getTrailer().getField(FIX::FIELD::CheckSum) !=
              f.raw.substr(f.raw.size() - 4, 3))
        throw std::runtime_error("QuickFIX re-encodes differently: " + out);
    }
    size_t count = messages.size();
    // Parse only (BodyLength and CheckSum checked, groups laid out by the dictionary)
    // into a reused Message, reading nothing.
    print_rate("parse-only", types[t],
               median_rate(
                   [&]() {
                     long n = 0;
                     for (const Fields& f : messages) {
                       message.setString(f.raw, true, &dictionary, &dictionary);
                       n += 1;
                     }
                     return n;
                   },
                   count, repeats, min_seconds),
               count, repeats);
    // Parse (BodyLength and CheckSum checked, groups laid out by the dictionary) into
    // a reused Message, then read the typed fields.
    print_rate("parse", types[t],
               median_rate(
                   [&]() {
                     long n = 0;
                     for (const Fields& f : messages) {
                       message.setString(f.raw, true, &dictionary, &dictionary);
                       n += read(message);
                     }
                     return n;
                   },
                   count, repeats, min_seconds),
               count, repeats);
    print_rate("parse+validate", types[t],
               median_rate(
                   [&]() {
                     long n = 0;
                     for (const Fields& f : messages) {
                       message.setString(f.raw, true, &dictionary, &dictionary);
                       dictionary.validate(message);
                       n += read(message);
                     }
                     return n;
                   },
                   count, repeats, min_seconds),
               count, repeats);
    print_rate("encode", types[t],
               median_rate(
                   [&]() {
                     long n = 0;
                     for (const Fields& f : messages) n += encode(f, message, out);
                     return n;
                   },
                   count, repeats, min_seconds),
               count, repeats);
  }
  return 0;
}

// -- round trip -------------------------------------------------------------

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("no free port on 127.0.0.1");
  ::close(fd);
  return ntohs(addr.sin_port);
}

class Application : public FIX::Application {
 public:
  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID&) override {
    std::lock_guard<std::mutex> lock(mutex_);
    logged_on_ = true;
    changed_.notify_all();
  }
  void onLogout(const FIX::SessionID&) override {}
  void toAdmin(FIX::Message&, const FIX::SessionID&) override {}
  void toApp(FIX::Message&, const FIX::SessionID&) throw(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message&, const FIX::SessionID&) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::RejectLogon) override {}

  bool wait_logged_on(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [this] { return logged_on_; });
  }

 protected:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool logged_on_ = false;
};

// The venue: answers each NewOrderSingle with an ExecutionReport (new).
class Venue : public Application {
 public:
  void fromApp(const FIX::Message& order, const FIX::SessionID& session) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::UnsupportedMessageType) override {
    if (order.getHeader().getField(FIX::FIELD::MsgType) != "D") return;
    ++orders_;
    FIX::Message report;
    report.getHeader().setField(FIX::MsgType("8"));
    std::string id = std::to_string(orders_);
    report.setField(FIX::OrderID("O" + id));
    report.setField(FIX::ExecID("E" + id));
    report.setField(FIX::ExecType(FIX::ExecType_NEW));
    report.setField(FIX::OrdStatus(FIX::OrdStatus_NEW));
    report.setField(FIX::FIELD::ClOrdID, order.getField(FIX::FIELD::ClOrdID));
    report.setField(FIX::FIELD::Symbol, order.getField(FIX::FIELD::Symbol));
    report.setField(FIX::FIELD::Side, order.getField(FIX::FIELD::Side));
    report.setField(FIX::FIELD::OrderQty, order.getField(FIX::FIELD::OrderQty));
    report.setField(FIX::FIELD::OrdType, order.getField(FIX::FIELD::OrdType));
    report.setField(FIX::FIELD::Price, order.getField(FIX::FIELD::Price));
    report.setField(FIX::LeavesQty(FIX::DoubleConvertor::convert(order.getField(FIX::FIELD::OrderQty))));
    report.setField(FIX::CumQty(0));
    report.setField(FIX::AvgPx(0));
    report.setField(FIX::TransactTime());
    FIX::Session::sendToTarget(report, session);
  }

 private:
  long orders_ = 0;
};

// The client: signals each ExecutionReport it receives.
class Client : public Application {
 public:
  void fromApp(const FIX::Message& report, const FIX::SessionID&) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::UnsupportedMessageType) override {
    if (report.getHeader().getField(FIX::FIELD::MsgType) != "8") return;
    std::lock_guard<std::mutex> lock(mutex_);
    last_cl_ord_id_ = report.getField(FIX::FIELD::ClOrdID);
    ++reports_;
    changed_.notify_all();
  }

  // Waits for report number `n`; returns its ClOrdID, or "" on timeout.
  std::string wait_report(long n) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, std::chrono::seconds(5), [&] { return reports_ >= n; }))
      return "";
    return last_cl_ord_id_;
  }

 private:
  long reports_ = 0;
  std::string last_cl_ord_id_;
};

std::string settings(const std::string& type, int port, const std::string& dictionary) {
  std::ostringstream s;
  s << "[DEFAULT]\nConnectionType=" << type << "\nStartTime=00:00:00\nEndTime=00:00:00\n"
    << "HeartBtInt=30\nReconnectInterval=1\nSocketNodelay=Y\nResetOnLogon=Y\n"
    << "UseDataDictionary=Y\nDataDictionary=" << dictionary << "\n"
    << "[SESSION]\nBeginString=FIX.4.4\n";
  if (type == "acceptor")
    s << "SenderCompID=PAPER\nTargetCompID=NEXUS\nSocketAcceptPort=" << port << "\n";
  else
    s << "SenderCompID=NEXUS\nTargetCompID=PAPER\nSocketConnectHost=127.0.0.1\n"
      << "SocketConnectPort=" << port << "\n";
  return s.str();
}

double at(const std::vector<double>& sorted, double q) {
  size_t i = static_cast<size_t>((sorted.size() - 1) * q + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

int roundtrip(const std::string& dictionary, long orders, long warmup,
              const std::string& samples_path) {
  int port = free_port();
  std::istringstream acceptor_text(settings("acceptor", port, dictionary));
  std::istringstream initiator_text(settings("initiator", port, dictionary));
  FIX::SessionSettings acceptor_settings(acceptor_text);
  FIX::SessionSettings initiator_settings(initiator_text);
  FIX::MemoryStoreFactory acceptor_store;
  FIX::MemoryStoreFactory initiator_store;
  Venue venue;
  Client client;
  FIX::SocketAcceptor acceptor(venue, acceptor_store, acceptor_settings);
  FIX::SocketInitiator initiator(client, initiator_store, initiator_settings);
  acceptor.start();
  initiator.start();
  if (!client.wait_logged_on(std::chrono::seconds(10)))
    throw std::runtime_error("the QuickFIX initiator did not log on");
  FIX::SessionID session("FIX.4.4", "NEXUS", "PAPER");
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(orders));
  for (long i = 0; i < warmup + orders; ++i) {
    FIX::Message order;
    order.getHeader().setField(FIX::MsgType("D"));
    std::string cl_ord_id = "B" + std::to_string(i);
    order.setField(FIX::ClOrdID(cl_ord_id));
    order.setField(FIX::HandlInst('1'));
    order.setField(FIX::Symbol("EUR/USD"));
    order.setField(FIX::Side(FIX::Side_BUY));
    order.setField(FIX::TransactTime());
    order.setField(FIX::OrderQty(1000));
    order.setField(FIX::OrdType(FIX::OrdType_LIMIT));
    order.setField(FIX::Price(1.0));
    order.setField(FIX::TimeInForce(FIX::TimeInForce_DAY));
    Clock::time_point start = Clock::now();
    FIX::Session::sendToTarget(order, session);
    std::string answered = client.wait_report(i + 1);
    double elapsed = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    if (answered != cl_ord_id)
      throw std::runtime_error("no ExecutionReport for order " + cl_ord_id);
    if (i >= warmup) samples.push_back(elapsed);
  }
  initiator.stop();
  acceptor.stop();
  if (!samples_path.empty()) {
    std::ofstream out(samples_path);
    for (double us : samples) out << static_cast<long long>(us * 1000 + 0.5) << "\n";
    if (!out) throw std::runtime_error("cannot write " + samples_path);
  }
  std::sort(samples.begin(), samples.end());
  std::printf(
      "{\"mode\": \"roundtrip\", \"orders\": %zu, \"warmup\": %ld, \"p50_us\": %.2f, "
      "\"p99_us\": %.2f, \"p999_us\": %.2f, \"max_us\": %.2f}\n",
      samples.size(), warmup, at(samples, 0.5), at(samples, 0.99), at(samples, 0.999),
      samples.back());
  return 0;
}

int usage() {
  std::cerr << "usage: quickfix_bench codec MESSAGES DICTIONARY [REPEATS] [MIN_MS]\n"
               "       quickfix_bench roundtrip DICTIONARY [ORDERS] [WARMUP] [SAMPLES]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 3 && args[0] == "codec") {
      int repeats = args.size() > 3 ? std::atoi(args[3].c_str()) : 5;
      double min_ms = args.size() > 4 ? std::atof(args[4].c_str()) : 200;
      if (repeats < 1 || min_ms <= 0) return usage();
      return codec(args[1], args[2], repeats, min_ms / 1000);
    }
    if (args.size() >= 2 && args[0] == "roundtrip") {
      long orders = args.size() > 2 ? std::atol(args[2].c_str()) : 100000;
      long warmup = args.size() > 3 ? std::atol(args[3].c_str()) : 1000;
      if (orders < 1 || warmup < 0) return usage();
      return roundtrip(args[1], orders, warmup, args.size() > 4 ? args[4] : "");
    }
  } catch (const std::exception& e) {
    std::cerr << "quickfix_bench: " << e.what() << "\n";
    return 1;
  }
  return usage();
}
