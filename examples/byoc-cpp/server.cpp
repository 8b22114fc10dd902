// A SageMaker inference container in C++ with nothing but the standard library and POSIX sockets.
//
// The container contract: started as `<entrypoint> serve`; listens on SAGEMAKER_BIND_TO_PORT
// (8080 when unset); GET /ping answers 200 once ready; POST /invocations answers predictions;
// SIGTERM stops it. The "model" is linear: weights (and an optional bias on the second line) read
// from /opt/ml/model/weights.txt, every weight 1 when there is no such file. Each input row — a
// CSV line, or an inner list of a JSON array of arrays — gets the prediction bias + weights · row.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Model {
    std::vector<double> weights;  // empty: every weight is 1
    double bias = 0.0;
};

Model load_model(const std::string& dir) {
    Model model;
    std::ifstream in(dir + "/weights.txt");
    std::string line;
    if (in && std::getline(in, line)) {
        std::istringstream weights(line);
        for (double w; weights >> w;) model.weights.push_back(w);
        if (std::getline(in, line)) model.bias = std::strtod(line.c_str(), nullptr);
    }
    return model;
}

// Rows of numbers: a row ends at a newline outside brackets or where an inner JSON list closes.
std::vector<std::vector<double>> parse_rows(const std::string& body) {
    std::vector<std::vector<double>> rows(1);
    int depth = 0;
    for (size_t i = 0; i < body.size();) {
        char c = body[i];
        if (c == '[') {
            ++depth;
            ++i;
        } else if (c == ']') {
            if (--depth == 1 && !rows.back().empty()) rows.emplace_back();
            ++i;
        } else if (c == '\n' && depth == 0) {
            if (!rows.back().empty()) rows.emplace_back();
            ++i;
        } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') {
            char* end = nullptr;
            double value = std::strtod(body.c_str() + i, &end);
            if (end == body.c_str() + i) {
                ++i;
                continue;
            }
            rows.back().push_back(value);
            i = end - body.c_str();
        } else {
            ++i;
        }
    }
    if (rows.back().empty()) rows.pop_back();
    return rows;
}

struct Reply {
    int status;
    std::string body;
    std::string content_type = "application/json";
};

Reply predict(const Model& model, const std::string& body) {
    auto rows = parse_rows(body);
    if (rows.empty()) return {400, "{\"error\": \"the request has no numbers\"}"};
    std::ostringstream out;
    out.precision(12);
    out << "{\"predictions\": [";
    for (size_t r = 0; r < rows.size(); ++r) {
        const auto& row = rows[r];
        if (!model.weights.empty() && row.size() != model.weights.size()) {
            std::ostringstream err;
            err << "{\"error\": \"row " << r + 1 << " has " << row.size() << " values; the model has "
                << model.weights.size() << " weights\"}";
            return {400, err.str()};
        }
        double y = model.bias;
        for (size_t j = 0; j < row.size(); ++j) y += (model.weights.empty() ? 1.0 : model.weights[j]) * row[j];
        out << (r ? ", " : "") << y;
    }
    out << "], \"server\": \"byoc-cpp\"}";
    return {200, out.str()};
}

const char* reason(int status) {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        default: return "Error";
    }
}

bool send_all(int fd, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<size_t>(n);
    }
    return true;
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// One keep-alive connection: requests one after another until the client closes.
void serve_connection(int fd, const Model* model) {
    std::string buffer;
    char chunk[65536];
    for (;;) {
        size_t header_end;
        while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) return close(fd), void();
            buffer.append(chunk, static_cast<size_t>(n));
        }
        std::istringstream head(buffer.substr(0, header_end));
        std::string method, path, line;
        head >> method >> path;
        std::getline(head, line);
        size_t length = 0;
        bool keep_alive = true;
        while (std::getline(head, line)) {
            auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            auto name = lower(line.substr(0, colon));
            auto value = line.substr(colon + 1);
            if (name == "content-length") length = std::strtoul(value.c_str(), nullptr, 10);
            if (name == "connection" && lower(value).find("close") != std::string::npos) keep_alive = false;
        }
        while (buffer.size() < header_end + 4 + length) {
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) return close(fd), void();
            buffer.append(chunk, static_cast<size_t>(n));
        }
        std::string body = buffer.substr(header_end + 4, length);
        buffer.erase(0, header_end + 4 + length);

        Reply reply{404, "{\"error\": \"no such route\"}"};
        if (method == "GET" && path == "/ping") reply = {200, ""};
        if (method == "POST" && path == "/invocations") reply = predict(*model, body);
        std::ostringstream out;
        out << "HTTP/1.1 " << reply.status << ' ' << reason(reply.status) << "\r\nContent-Type: " << reply.content_type
            << "\r\nContent-Length: " << reply.body.size() << "\r\n\r\n" << reply.body;
        if (!send_all(fd, out.str()) || !keep_alive) return close(fd), void();
    }
}

}  // namespace

int main() {
    // SIGTERM and SIGINT are taken by sigwait in the main thread below, in no other thread.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);

    const char* port_env = std::getenv("SAGEMAKER_BIND_TO_PORT");
    int port = port_env && *port_env ? std::atoi(port_env) : 8080;
    const char* model_dir = std::getenv("SM_MODEL_DIR");
    static const Model model = load_model(model_dir && *model_dir ? model_dir : "/opt/ml/model");

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener, 128) != 0) {
        std::cerr << "byoc-cpp: cannot listen on port " << port << ": " << std::strerror(errno) << std::endl;
        return 1;
    }
    std::cout << "byoc-cpp: listening on port " << port << " with " << model.weights.size() << " weights" << std::endl;

    std::thread([listener] {
        for (;;) {
            int fd = accept(listener, nullptr, nullptr);
            if (fd >= 0) std::thread(serve_connection, fd, &model).detach();
        }
    }).detach();

    int signal_number = 0;
    sigwait(&stop, &signal_number);
    std::cout << "byoc-cpp: stopping on signal " << signal_number << std::endl;
    return 0;
}
