"""The stochastic optimizers of the estimators (estimators.py), as
scikit-learn's MLP defines them: SGD with momentum and learning-rate
schedules, and Adam. Each updates a flat parameter vector in place."""

import numpy as np

class SGDState:
    """scikit-learn's SGD on the flat vector: velocity = momentum * velocity -
    lr * grad, then a Nesterov or plain step; the learning-rate schedules."""

    def __init__(self, n, lr, schedule, momentum, nesterov, power_t):
        self.learning_rate_init = self.learning_rate = float(lr)
        self.schedule, self.momentum = schedule, float(momentum)
        self.nesterov, self.power_t = bool(nesterov), float(power_t)
        self.velocity = np.zeros(n)

    def update(self, params, grad):
        v = self.velocity
        v *= self.momentum
        v -= self.learning_rate * grad
        if self.nesterov:
            params += self.momentum * v - self.learning_rate * grad
        else:
            params += v

    def iteration_ends(self, time_step):
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False


class AdamState:
    """scikit-learn's Adam on the flat vector (its bias correction folded into
    the learning rate, epsilon added to sqrt(v))."""

    def __init__(self, n, lr, beta_1, beta_2, epsilon):
        self.learning_rate_init = self.learning_rate = float(lr)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.t = 0
        self.m, self.v = np.zeros(n), np.zeros(n)

    def update(self, params, grad):
        # In place, through one scratch vector: a small net's step is a few
        # microseconds of kernel per sample, so temporaries would show.
        b1, b2 = self.beta_1, self.beta_2
        m, v = self.m, self.v
        buf = getattr(self, "_buf", None)
        if buf is None or buf.shape != m.shape:
            buf = self._buf = np.empty_like(m)
        self.t += 1
        m *= b1
        np.multiply(grad, 1 - b1, out=buf)
        m += buf
        v *= b2
        np.multiply(grad, grad, out=buf)
        buf *= 1 - b2
        v += buf
        self.learning_rate = (self.learning_rate_init * np.sqrt(1 - b2 ** self.t)
                              / (1 - b1 ** self.t))
        np.sqrt(v, out=buf)
        buf += self.epsilon
        np.divide(m, buf, out=buf)
        buf *= self.learning_rate
        params -= buf

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True
