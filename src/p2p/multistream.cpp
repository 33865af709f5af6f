#include "p2p/multistream.h"

#include "core/varint.h"

namespace idn::p2p::multistream {

void append_message(std::string_view msg, Bytes& out) {
  core::append_uvarint(msg.size() + 1, out);
  out.insert(out.end(), msg.begin(), msg.end());
  out.push_back('\n');
}

Bytes encode_message(std::string_view msg) {
  Bytes out;
  append_message(msg, out);
  return out;
}

Result<std::optional<Parsed>> parse_message(ByteView in) {
  auto v = core::parse_uvarint(in);
  if (v.error == core::UvarintError::kTruncated) return std::optional<Parsed>{};
  if (v.error != core::UvarintError::kNone) {
    return Status::peer_misbehaved("multistream-select: malformed message length varint");
  }
  if (v.value == 0) return Status::peer_misbehaved("multistream-select: empty message");
  if (v.value > kMaxMessageLen) {
    return Status::peer_misbehaved("multistream-select: message of " + std::to_string(v.value) +
                                   " bytes exceeds the " + std::to_string(kMaxMessageLen) +
                                   "-byte limit");
  }
  if (in.size() - v.size < v.value) return std::optional<Parsed>{};
  ByteView body = in.subspan(v.size, v.value);
  if (body.back() != '\n') {
    return Status::peer_misbehaved("multistream-select: message does not end in '\\n'");
  }
  Parsed p{to_string(body.first(body.size() - 1)), v.size + v.value};
  return std::optional<Parsed>(std::move(p));
}

namespace {

// Splits complete messages off the front of `buf`, calling `on` for each until `stop()`.
template <class On, class Stop>
Status drain(Bytes& buf, On on, Stop stop) {
  size_t pos = 0;
  Status st;
  while (!stop()) {
    auto r = parse_message(ByteView(buf).subspan(pos));
    if (!r.ok()) {
      st = r.status();
      break;
    }
    if (!r->has_value()) break;
    pos += (*r)->consumed;
    st = on(std::move((*r)->message));
    if (!st.is_ok()) break;
  }
  buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
  return st;
}

}  // namespace

Dialer::Dialer(std::vector<std::string> protocols) : protocols_(std::move(protocols)) {
  if (protocols_.empty()) protocols_.push_back("");
  append_message(kHeader, out_);
  append_message(protocols_[0], out_);
}

Bytes Dialer::take_output() {
  return std::exchange(out_, {});
}

Bytes Dialer::take_leftover() {
  return std::exchange(in_, {});
}

Status Dialer::feed(ByteView data) {
  if (done_) {
    in_.insert(in_.end(), data.begin(), data.end());
    return Status::ok();
  }
  in_.insert(in_.end(), data.begin(), data.end());
  return drain(
      in_, [this](std::string m) { return on_message(std::move(m)); }, [this] { return done_; });
}

Status Dialer::on_message(std::string msg) {
  if (!header_seen_) {
    if (msg != kHeader) {
      return Status::peer_misbehaved("multistream-select: expected header \"" +
                                     std::string(kHeader) + "\", got \"" + msg + "\"");
    }
    header_seen_ = true;
    return Status::ok();
  }
  if (msg == protocols_[index_]) {
    done_ = true;
    return Status::ok();
  }
  if (msg == kNa) {
    if (++index_ >= protocols_.size()) {
      index_ = protocols_.size() - 1;
      std::string list;
      for (auto& p : protocols_) list += (list.empty() ? "" : ", ") + p;
      return Status::unsupported("remote supports none of the protocols: " + list);
    }
    append_message(protocols_[index_], out_);
    return Status::ok();
  }
  return Status::peer_misbehaved("multistream-select: proposed \"" + protocols_[index_] +
                                 "\" but the listener answered \"" + msg + "\"");
}

Listener::Listener(Supported supported) : supported_(std::move(supported)) {}

Bytes Listener::take_output() {
  return std::exchange(out_, {});
}

Bytes Listener::take_leftover() {
  return std::exchange(in_, {});
}

Status Listener::feed(ByteView data) {
  in_.insert(in_.end(), data.begin(), data.end());
  if (done_) return Status::ok();
  return drain(
      in_, [this](std::string m) { return on_message(std::move(m)); }, [this] { return done_; });
}

Status Listener::on_message(std::string msg) {
  if (!header_seen_) {
    if (msg != kHeader) {
      return Status::peer_misbehaved("multistream-select: expected header \"" +
                                     std::string(kHeader) + "\", got \"" + msg.substr(0, 64) +
                                     "\"");
    }
    header_seen_ = true;
    append_message(kHeader, out_);
    return Status::ok();
  }
  if (++proposals_ > kMaxProposals) {
    return Status::peer_misbehaved("multistream-select: more than " +
                                   std::to_string(kMaxProposals) + " proposals refused");
  }
  if (msg != kLs && msg != kNa && supported_(msg)) {
    protocol_ = msg;
    done_ = true;
    append_message(msg, out_);
    return Status::ok();
  }
  // "ls" is optional in the spec; we do not advertise our protocol list to strangers.
  append_message(kNa, out_);
  return Status::ok();
}

}  // namespace idn::p2p::multistream
