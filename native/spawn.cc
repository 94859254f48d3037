// spawn.cc: run a short command and capture its output, without fork() (Linux, glibc).
//
// Node's child_process.spawn forks, and fork() copies the parent's page tables: the cost
// grows with the agent's memory. Measured on a 2-core VM (node 20.20, /bin/true, 100 runs):
// 5.2 ms per spawn() at 49 MiB RSS, 11.4 ms at 149 MiB, 20.2 ms at 451 MiB, all of it on the
// event loop. A job replicating 20 tiny incrementals spent half its agents' CPU there
// (2.8 s of 5.7 s in the receiver's V8 profile). glibc's posix_spawn uses
// clone(CLONE_VM | CLONE_VFORK): no copy, whatever the parent's size.
//
//   spawnCaptured(file, argv, envp, input, timeoutMs, maxCapture, done)
//       file: an absolute or relative path (no PATH search: the caller resolves it);
//       argv: argv[0] first; envp: "NAME=value" strings; input: a Buffer written to the
//       child's stdin, which is then closed. Every signal the child gets is at its default
//       and none is blocked, as with Node's spawn (glibc starts the child with its two
//       internal signals, 32 and 33, ignored; nothing sends them to another process).
//       A thread of its own starts the child, writes stdin, reads stdout and stderr (each
//       kept up to maxCapture bytes, the rest read and dropped so the child never blocks),
//       kills the child with SIGKILL once timeoutMs (> 0) has passed, and reaps it; then
//       done(result) runs on the JS thread with { code, signal, stdout: Buffer, stderr: Buffer,
//       stdoutBytes: what the child wrote, kept or not }
//       (code -1 when killed by a signal), or { error: "ENOENT" | "EACCES" | ..., message }
//       when the command could not be started.
//
// The thread, not libuv's pool, waits: a zfs command may take seconds, and the pool's
// 4 threads also do the lanes' zlib and the spool's file I/O.

#include <napi.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Outcome {
  int code = -1;
  int signal = 0;
  std::string out;
  std::string err;
  size_t outTotal = 0;  // bytes the child wrote to stdout, kept or not
  size_t errTotal = 0;
};

struct Job {
  std::string file;
  std::vector<std::string> argv, envp;
  std::string input;
  long timeoutMs = 0;
  size_t maxCapture = 0;
  Napi::ThreadSafeFunction done;
  pid_t pid = 0;
  int in = -1, out = -1, err = -1;  // our ends: stdin's write end, stdout's and stderr's read ends
  int spawnErrno = 0;              // posix_spawn (or pipe2) failed: nothing ran
  Outcome result;
};

std::vector<char*> Pointers(std::vector<std::string>& v);
int Start(Job* job);

long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Drain(int fd, std::string& into, size_t max, bool& open, size_t& total) {
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    total += static_cast<size_t>(n);
    size_t room = into.size() < max ? max - into.size() : 0;
    into.append(buf, static_cast<size_t>(n) < room ? static_cast<size_t>(n) : room);
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    open = false;
  }
}

void Reply(Job* job) {
  // BlockingCall only queues the call: the job is freed by the call itself, on the JS thread
  Napi::ThreadSafeFunction done = job->done;
  done.BlockingCall(job, [](Napi::Env env, Napi::Function cb, Job* j) {
    Napi::Object o = Napi::Object::New(env);
    if (j->spawnErrno) {
      int e = j->spawnErrno;
      o.Set("error", Napi::String::New(env, e == ENOENT ? "ENOENT" : e == EACCES ? "EACCES" : e == ENOEXEC ? "ENOEXEC" : "ESPAWN"));
      o.Set("message", Napi::String::New(env, "posix_spawn(" + j->file + "): " + strerror(e)));
    } else {
      o.Set("code", j->result.code);
      o.Set("signal", j->result.signal);
      o.Set("stdout", Napi::Buffer<char>::Copy(env, j->result.out.data(), j->result.out.size()));
      o.Set("stderr", Napi::Buffer<char>::Copy(env, j->result.err.data(), j->result.err.size()));
      o.Set("stdoutBytes", Napi::Number::New(env, static_cast<double>(j->result.outTotal)));
    }
    delete j;
    cb.Call({o});
  });
  done.Release();
}

void Wait(Job* job) {
  job->spawnErrno = Start(job);
  if (job->spawnErrno) return Reply(job);
  // stdin first: at most what a pipe holds (shared/run.ts sends more through Node), and a
  // child that exits without reading gives EPIPE (Node ignores SIGPIPE), which ends it here
  const char* p = job->input.data();
  size_t left = job->input.size();
  while (left > 0) {
    ssize_t n = write(job->in, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
  close(job->in);

  bool outOpen = true, errOpen = true, killed = false;
  long long deadline = job->timeoutMs > 0 ? NowMs() + job->timeoutMs : 0;
  long long giveUp = 0;  // after a kill: a grandchild may still hold the pipes; stop reading 2 s on
  while (outOpen || errOpen) {
    int wait = -1;
    long long now = NowMs();
    if (deadline && !killed) {
      if (now >= deadline) {
        kill(job->pid, SIGKILL);
        killed = true;
        giveUp = now + 2000;
      } else {
        wait = static_cast<int>(deadline - now);
      }
    }
    if (killed) {
      if (now >= giveUp) break;
      wait = static_cast<int>(giveUp - now);
    }
    struct pollfd fds[2];
    int n = 0, outAt = -1, errAt = -1;
    if (outOpen) { fds[n] = {job->out, POLLIN, 0}; outAt = n++; }
    if (errOpen) { fds[n] = {job->err, POLLIN, 0}; errAt = n++; }
    int r = poll(fds, n, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    if (outAt >= 0 && fds[outAt].revents) Drain(job->out, job->result.out, job->maxCapture, outOpen, job->result.outTotal);
    if (errAt >= 0 && fds[errAt].revents) Drain(job->err, job->result.err, job->maxCapture, errOpen, job->result.errTotal);
  }
  close(job->out);
  close(job->err);

  int status = 0;
  while (waitpid(job->pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    job->result.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    job->result.signal = WTERMSIG(status);
  }

  Reply(job);
}

std::vector<std::string> Strings(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
    std::string s = e.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(v.Env(), std::string(what) + " holds a NUL byte");
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& v) {
  std::vector<char*> p;
  for (auto& s : v) p.push_back(&s[0]);
  p.push_back(nullptr);
  return p;
}

// On the waiting thread: the pipes and posix_spawn. The parent is suspended until the child
// has exec'd (CLONE_VFORK); on 2 busy cores that took ~4 ms of the event loop per command
// (bench/datasets.ts --cpu-prof), so not on the JS thread. 0, or the errno that failed.
int Start(Job* job) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return errno;
  if (pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    close(in[0]), close(in[1]);
    return e;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    return e;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);  // dup2 clears O_CLOEXEC on 0, 1, 2
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);  // Node ignores SIGPIPE: the child must not inherit that
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> av = Pointers(job->argv);
  std::vector<char*> ev = Pointers(job->envp);
  int rc = posix_spawn(&job->pid, job->file.c_str(), &fa, &attr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]), close(out[1]), close(err[1]);
  if (rc != 0) {
    close(in[1]), close(out[0]), close(err[0]);
    return rc;
  }
  job->in = in[1], job->out = out[0], job->err = err[0];
  return 0;
}

Napi::Value SpawnCaptured(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsString() || !info[3].IsBuffer() || !info[4].IsNumber() || !info[5].IsNumber() || !info[6].IsFunction()) {
    throw Napi::TypeError::New(env, "spawnCaptured(file, argv, envp, input: Buffer, timeoutMs, maxCapture, done)");
  }
  Job* job = new Job();
  job->file = info[0].As<Napi::String>().Utf8Value();
  try {
    job->argv = Strings(info[1], "argv");
    job->envp = Strings(info[2], "envp");
    if (job->argv.empty()) throw Napi::TypeError::New(env, "argv must name the command");
  } catch (...) {
    delete job;
    throw;
  }
  Napi::Buffer<char> input = info[3].As<Napi::Buffer<char>>();
  job->input.assign(input.Data(), input.Length());
  job->timeoutMs = static_cast<long>(info[4].As<Napi::Number>().Int64Value());
  job->maxCapture = static_cast<size_t>(info[5].As<Napi::Number>().Int64Value());
  job->done = Napi::ThreadSafeFunction::New(env, info[6].As<Napi::Function>(), "spawnCaptured", 0, 1);
  std::thread(Wait, job).detach();
  return env.Undefined();
}

}  // namespace

void RegisterSpawn(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnCaptured", Napi::Function::New(env, SpawnCaptured, "spawnCaptured"));
}
