"""Layers: fastlstm.LSTM, fastlstm.LSTMCell and the step-by-step stream."""
