// sockopt.cc: the TCP socket options Node has no API for, for zferry's lanes (Linux only).
//
// Every function takes a socket file descriptor (see socketFd() in shared/sockopt.ts),
// sets one thing, and returns what the kernel reports back with getsockopt():
//
//   setBuffers(fd, sndbuf, rcvbuf, force = false)
//       -> { sndbuf, rcvbuf, sndbufForced, rcvbufForced }
//       0 leaves that buffer unchanged. The kernel doubles the value (bookkeeping overhead)
//       and, without force, caps it at net.core.wmem_max / rmem_max. force tries
//       SO_SNDBUFFORCE / SO_RCVBUFFORCE first (needs CAP_NET_ADMIN; not capped) and falls
//       back to the plain option on EPERM; *Forced says which one took effect.
//   setCongestion(fd, name) -> name read back      getCongestion(fd) -> string
//   setNotSentLowat(fd, bytes) -> value read back
//   tcpInfo(fd) -> { state, rttUs, ... } from the kernel's struct tcp_info; a field is
//       present only if this header has it and the running kernel filled it in.
//
// And one call for the pipes between the agents and zfs (libuv gives a child socketpairs,
// whose small buffers cost a wake-up per 64 KiB):
//   makePipe(capacity) -> { readFd, writeFd, capacity }
//       pipe2(O_CLOEXEC), then F_SETPIPE_SZ; capacity is what the kernel granted (the
//       default when the request is refused, e.g. above fs.pipe-max-size for non-root).
//
// spawn.cc adds spawnCaptured(), which runs a short command (zfs get, list...) without fork().
//
// Failures throw Error("setsockopt(SO_SNDBUF): Operation not permitted") with .errno and .code.

#include <napi.h>

#include <fcntl.h>       // pipe2, F_SETPIPE_SZ
#include <unistd.h>

#include <netinet/in.h>  // IPPROTO_TCP
#include <sys/socket.h>
#include <linux/tcp.h>   // TCP_CONGESTION, TCP_NOTSENT_LOWAT, TCP_INFO, struct tcp_info

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <type_traits>

void RegisterSpawn(Napi::Env env, Napi::Object exports);  // spawn.cc

namespace {

[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
  if (const char* name = strerrorname_np(err)) e.Set("code", Napi::String::New(env, name));
#endif
  throw e;
}

// A non-negative integer argument that fits in an int (fds, byte counts).
int IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
  if (!(v >= 0 && v <= INT_MAX && v == std::floor(v)))
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an integer from 0 to 2147483647");
  return static_cast<int>(v);
}

void SetInt(Napi::Env env, int fd, int level, int opt, int value, const char* what) {
  if (setsockopt(fd, level, opt, &value, sizeof value) != 0) ThrowErrno(env, std::string("setsockopt(") + what + ")", errno);
}

int GetInt(Napi::Env env, int fd, int level, int opt, const char* what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, opt, &value, &len) != 0) ThrowErrno(env, std::string("getsockopt(") + what + ")", errno);
  return value;
}

// Returns true when the forced option (CAP_NET_ADMIN, ignores the net.core.*mem_max cap) was used.
bool SetBuffer(Napi::Env env, int fd, int bytes, bool force, int opt, const char* what, int forceOpt, const char* forceWhat) {
  if (force) {
    if (setsockopt(fd, SOL_SOCKET, forceOpt, &bytes, sizeof bytes) == 0) return true;
    if (errno != EPERM) ThrowErrno(env, std::string("setsockopt(") + forceWhat + ")", errno);
  }
  SetInt(env, fd, SOL_SOCKET, opt, bytes, what);
  return false;
}

Napi::Value SetBuffers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd"), snd = IntArg(info, 1, "sndbuf"), rcv = IntArg(info, 2, "rcvbuf");
  bool force = info.Length() > 3 && info[3].ToBoolean().Value();
  bool sndForced = snd > 0 && SetBuffer(env, fd, snd, force, SO_SNDBUF, "SO_SNDBUF", SO_SNDBUFFORCE, "SO_SNDBUFFORCE");
  bool rcvForced = rcv > 0 && SetBuffer(env, fd, rcv, force, SO_RCVBUF, "SO_RCVBUF", SO_RCVBUFFORCE, "SO_RCVBUFFORCE");
  Napi::Object out = Napi::Object::New(env);
  out.Set("sndbuf", GetInt(env, fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"));
  out.Set("rcvbuf", GetInt(env, fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"));
  out.Set("sndbufForced", sndForced);
  out.Set("rcvbufForced", rcvForced);
  return out;
}

std::string Congestion(Napi::Env env, int fd) {
  char name[64] = {0};  // the kernel's TCP_CA_NAME_MAX is 16
  socklen_t len = sizeof name - 1;
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0) ThrowErrno(env, "getsockopt(TCP_CONGESTION)", errno);
  return std::string(name, strnlen(name, len));
}

Napi::Value GetCongestion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Congestion(info.Env(), IntArg(info, 0, "fd")));
}

Napi::Value SetCongestion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "name must be a string");
  std::string name = info[1].As<Napi::String>().Utf8Value();
  if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), name.size()) != 0)
    ThrowErrno(env, "setsockopt(TCP_CONGESTION, " + name + ")", errno);
  return Napi::String::New(env, Congestion(env, fd));
}

Napi::Value SetNotSentLowat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  SetInt(env, fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, IntArg(info, 1, "bytes"), "TCP_NOTSENT_LOWAT");
  return Napi::Number::New(env, GetInt(env, fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT"));
}

// ---- tcpInfo ---------------------------------------------------------------------------
// One line per reported field: JS name, struct tcp_info member. Units are the kernel's:
// times in microseconds, rates in BYTES per second (UINT64_MAX, "no pacing", becomes Infinity).
#define TCP_INFO_FIELDS(X)                   \
  X(state, tcpi_state)                       \
  X(retransmits, tcpi_retransmits)           \
  X(sndMss, tcpi_snd_mss)                    \
  X(lost, tcpi_lost)                         \
  X(rttUs, tcpi_rtt)                         \
  X(rttVarUs, tcpi_rttvar)                   \
  X(sndSsthresh, tcpi_snd_ssthresh)          \
  X(sndCwnd, tcpi_snd_cwnd)                  \
  X(rcvSpace, tcpi_rcv_space)                \
  X(totalRetrans, tcpi_total_retrans)        \
  X(pacingRateBps, tcpi_pacing_rate)         \
  X(bytesAcked, tcpi_bytes_acked)            \
  X(bytesReceived, tcpi_bytes_received)      \
  X(notsentBytes, tcpi_notsent_bytes)        \
  X(minRttUs, tcpi_min_rtt)                  \
  X(deliveryRateBps, tcpi_delivery_rate)     \
  X(busyTimeUs, tcpi_busy_time)              \
  X(rwndLimitedUs, tcpi_rwnd_limited)        \
  X(sndbufLimitedUs, tcpi_sndbuf_limited)    \
  X(bytesSent, tcpi_bytes_sent)              \
  X(bytesRetrans, tcpi_bytes_retrans)        \
  X(sndWnd, tcpi_snd_wnd)

template <typename V>
Napi::Value ToJs(Napi::Env env, V v) {
  if constexpr (sizeof(V) == 8) {
    if (v == ~V(0)) return Napi::Number::New(env, INFINITY);
  }
  return Napi::Number::New(env, static_cast<double>(v));
}

// Put_<member>(obj, ti, len): sets the field if this header declares it (SFINAE, so an old
// <linux/tcp.h> still compiles) and the kernel's optlen covers it (an old kernel fills less).
#define DEFINE_PUT(js, member)                                                                 \
  template <typename T, typename = void> struct Has_##member : std::false_type {};            \
  template <typename T> struct Has_##member<T, std::void_t<decltype(T::member)>> : std::true_type {}; \
  template <typename T> void Put_##member(Napi::Object& o, const T& ti, socklen_t len) {       \
    if constexpr (Has_##member<T>::value) {                                                    \
      if (offsetof(T, member) + sizeof(ti.member) <= len) o.Set(#js, ToJs(o.Env(), ti.member)); \
    }                                                                                          \
  }
TCP_INFO_FIELDS(DEFINE_PUT)

Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  struct tcp_info ti;
  std::memset(&ti, 0, sizeof ti);
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) ThrowErrno(env, "getsockopt(TCP_INFO)", errno);
  Napi::Object o = Napi::Object::New(env);
#define CALL_PUT(js, member) Put_##member(o, ti, len);
  TCP_INFO_FIELDS(CALL_PUT)
  return o;
}

Napi::Value MakePipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int capacity = IntArg(info, 0, "capacity");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowErrno(env, "pipe2", errno);
  int got = capacity > 0 ? fcntl(fds[1], F_SETPIPE_SZ, capacity) : -1;
  if (got < 0) got = fcntl(fds[1], F_GETPIPE_SZ);
  if (got < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    ThrowErrno(env, "fcntl(F_GETPIPE_SZ)", err);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("readFd", fds[0]);
  out.Set("writeFd", fds[1]);
  out.Set("capacity", got);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setBuffers", Napi::Function::New(env, SetBuffers, "setBuffers"));
  exports.Set("setCongestion", Napi::Function::New(env, SetCongestion, "setCongestion"));
  exports.Set("getCongestion", Napi::Function::New(env, GetCongestion, "getCongestion"));
  exports.Set("setNotSentLowat", Napi::Function::New(env, SetNotSentLowat, "setNotSentLowat"));
  exports.Set("tcpInfo", Napi::Function::New(env, TcpInfo, "tcpInfo"));
  exports.Set("makePipe", Napi::Function::New(env, MakePipe, "makePipe"));
  RegisterSpawn(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sockopt, Init)
