#include "model/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

namespace idn::model {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

// Closes the descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace

Result<Bytes> read_file(const std::filesystem::path& path, uint64_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status::not_found(path.string() + ": no such file");
    return Status::io_error(path.string() + ": cannot open: " + errno_text());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return Status::io_error(path.string() + ": cannot stat: " + errno_text());
  if (S_ISDIR(st.st_mode)) return Status::invalid_argument(path.string() + ": is a directory");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    return Status::limit_exceeded(path.string() + ": file is " + std::to_string(st.st_size) +
                                  " bytes, more than the limit of " + std::to_string(max_bytes));
  Bytes out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::io_error(path.string() + ": read failed: " + errno_text());
    }
    if (n == 0) break;  // the file shrank while we read it
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

Status write_file_atomic(const std::filesystem::path& path, ByteView data) {
  std::filesystem::path tmp = path;
  // pid + counter: concurrent writers (processes or threads) never share a temp file.
  static std::atomic<uint64_t> counter{0};
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Status::io_error(tmp.string() + ": cannot create: " + errno_text());
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::io_error(tmp.string() + ": write failed: " + errno_text());
      ::unlink(tmp.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    Status st = Status::io_error(tmp.string() + ": fsync failed: " + errno_text());
    ::unlink(tmp.c_str());
    return st;
  }
  if (::close(fd.release()) != 0) {
    Status st = Status::io_error(tmp.string() + ": close failed: " + errno_text());
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::io_error("cannot rename " + tmp.string() + " to " + path.string() + ": " +
                                 errno_text());
    ::unlink(tmp.c_str());
    return st;
  }
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());  // best effort: some file systems refuse it
  return Status::ok();
}

}  // namespace idn::model
