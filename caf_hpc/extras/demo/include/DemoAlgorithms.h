// The demo's three chained calibrations in C++, written against CafHpc::CalibrationAlgorithm as
// real Belle II algorithms are written against Belle2::CalibrationAlgorithm. They read the
// collector output (ROOT files) of the "DemoCollector" and the payloads committed by the earlier
// algorithms, and speak through std::cout, printf and std::cerr, as C++ algorithms do.
//
// The detector constants (DemoDetector::...) are declared from caf_hpc/demo/detector.py before
// this header, so that Python and C++ share one definition of them.
#pragma once

#include "CalibrationAlgorithm.h"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

namespace CafHpcDemo {

  using CafHpc::ExpRun;
  using CafHpc::PayloadData;

  /// Mean and spread of ``values`` within ±nSigma of an iterated centre: a peak's position,
  /// robust against a continuum beside it.
  struct Peak { double centre; double sigma; size_t n; };

  inline Peak truncatedMean(const std::vector<double>& values, double start, double width,
                            double nSigma = 3.0, int maxIterations = 20)
  {
    Peak peak{start, width, 0};
    for (int i = 0; i < maxIterations; ++i) {
      double sum = 0, sum2 = 0;
      size_t n = 0;
      for (double v : values) {
        if (std::fabs(v - peak.centre) <= nSigma * peak.sigma) { sum += v; sum2 += v * v; ++n; }
      }
      if (n < 2) break;
      double centre = sum / n;
      bool converged = std::fabs(centre - peak.centre) < 1e-9 * std::max(1.0, std::fabs(peak.centre));
      peak = Peak{centre, std::sqrt(std::max(0.0, sum2 / n - centre * centre)), n};
      if (converged) break;
    }
    return peak;
  }

  inline double median(std::vector<double> values)
  {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    size_t mid = values.size() / 2;
    return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
  }

  /// Shared plumbing: the fail-on-purpose switch, the minimum of hits, reading earlier payloads per run.
  class DemoAlgorithm : public CafHpc::CalibrationAlgorithm {
  public:
    explicit DemoAlgorithm(const std::string& name) : CafHpc::CalibrationAlgorithm("DemoCollector"), m_name(name) {}
    void setFail(bool fail) { m_fail = fail; }
    bool getFail() const { return m_fail; }
    void setMinHits(int minHits) { m_minHits = minHits; }
    int getMinHits() const { return m_minHits; }

  protected:
    EResult calibrate() override
    {
      if (m_fail) {
        std::cerr << m_name << ": failing on purpose (setFail(true)) to show fail-fast" << std::endl;
        return c_Failure;
      }
      return runCalibration();
    }
    virtual EResult runCalibration() = 0;

    /// Column ``column`` of payload ``name`` for every executed run; false (and said why) if any is missing.
    bool payloadsPerRun(const std::string& name, const std::string& column, std::map<ExpRun, std::vector<double>>& out)
    {
      std::vector<ExpRun> missing;
      for (const auto& er : getRunList()) {
        PayloadData payload;
        if (getPayload(name, er, payload) && payload.count(column)) out[er] = payload[column];
        else missing.push_back(er);
      }
      if (!missing.empty()) {
        std::cerr << m_name << ": no " << name << " payload for " << missing.size() << " of " << getRunList().size()
                  << " runs (first: " << missing[0].first << "," << missing[0].second << "). It must be committed "
                  << "by an earlier algorithm of this iteration." << std::endl;
        return false;
      }
      std::cout << m_name << ": read " << name << " payloads for " << out.size() << " runs" << std::endl;
      return true;
    }

    /// False, and said why, when ``channel`` has fewer than the minimum of ``what``.
    bool enoughHits(size_t channel, size_t count, const char* what) const
    {
      if (count >= size_t(m_minHits)) return true;
      std::cerr << m_name << ": channel " << channel << " has " << count << " " << what << " (need " << m_minHits
                << ")" << std::endl;
      return false;
    }

    std::string m_name;
    bool m_fail = false;
    int m_minHits = 20;
  };

  /// Pedestal = mean ADC of random-trigger events, per channel; meant to run run by run.
  class PedestalCalibration : public DemoAlgorithm {
  public:
    PedestalCalibration() : DemoAlgorithm("PedestalCalibration") {}
  protected:
    EResult runCalibration() override
    {
      auto events = getObjectPtr(DemoDetector::kPedestalEvents);
      std::vector<int>* adc = nullptr;
      events->SetBranchAddress("adc", &adc);
      Long64_t n = events->GetEntries();
      const auto& run = getRunList().front();
      if (n < m_minHits) {
        std::cerr << m_name << ": only " << n << " pedestal events in run " << run.first << "," << run.second
                  << " (need " << m_minHits << "): not enough data" << std::endl;
        events->ResetBranchAddresses();
        delete adc;
        return c_NotEnoughData;
      }
      std::vector<double> sum, sum2;
      for (Long64_t i = 0; i < n; ++i) {
        events->GetEntry(i);
        if (sum.empty()) { sum.assign(adc->size(), 0.0); sum2.assign(adc->size(), 0.0); }
        for (size_t ch = 0; ch < adc->size(); ++ch) { sum[ch] += (*adc)[ch]; sum2[ch] += double((*adc)[ch]) * (*adc)[ch]; }
      }
      events->ResetBranchAddresses();
      delete adc;
      PayloadData payload;
      for (size_t ch = 0; ch < sum.size(); ++ch) {
        double mean = sum[ch] / n;
        payload["pedestal"].push_back(mean);
        payload["noise"].push_back(std::sqrt(std::max(0.0, sum2[ch] / n - mean * mean)));
      }
      payload["events"].push_back(double(n));
      double noise = std::accumulate(payload["noise"].begin(), payload["noise"].end(), 0.0) / sum.size();
      saveCalibration(payload, "Pedestals");
      std::cout << m_name << ": run " << run.first << "," << run.second << ": " << sum.size() << " channels from "
                << n << " events, mean noise " << noise << " ADC" << std::endl;
      return c_OK;
    }
  };

  /// The signal hits of the executed runs: (run, channel, adc, time) per hit.
  struct Hit { ExpRun run; int channel; int adc; double time; };

  inline std::vector<Hit> readHits(TChain& chain)
  {
    int exp = 0, run = 0, channel = 0, adc = 0;
    double time = 0;
    chain.SetBranchAddress("exp", &exp);
    chain.SetBranchAddress("run", &run);
    chain.SetBranchAddress("channel", &channel);
    chain.SetBranchAddress("adc", &adc);
    chain.SetBranchAddress("time", &time);
    std::vector<Hit> hits;
    hits.reserve(chain.GetEntries());
    for (Long64_t i = 0; i < chain.GetEntries(); ++i) {
      chain.GetEntry(i);
      hits.push_back(Hit{ExpRun(exp, run), channel, adc, time});
    }
    chain.ResetBranchAddresses();
    return hits;
  }

  /// Gain = pedestal-subtracted position of the source line / line energy, per channel.
  class GainCalibration : public DemoAlgorithm {
  public:
    GainCalibration() : DemoAlgorithm("GainCalibration") {}
  protected:
    EResult runCalibration() override
    {
      std::map<ExpRun, std::vector<double>> pedestals;
      if (!payloadsPerRun("Pedestals", "pedestal", pedestals)) return c_Failure;
      size_t channels = pedestals.begin()->second.size();
      std::vector<std::vector<double>> amplitudes(channels);
      for (const auto& hit : readHits(*getObjectPtr(DemoDetector::kSignalHits)))
        amplitudes[hit.channel].push_back(hit.adc - pedestals[hit.run][hit.channel]);
      PayloadData payload;
      for (size_t ch = 0; ch < channels; ++ch) {
        if (!enoughHits(ch, amplitudes[ch].size(), "source hits")) return c_NotEnoughData;
        double start = median(amplitudes[ch]);
        Peak peak = truncatedMean(amplitudes[ch], start, 0.05 * start);
        payload["gain"].push_back(peak.centre / DemoDetector::kSourceEnergyKeV);
        payload["resolution"].push_back(peak.sigma / peak.centre);
      }
      saveCalibration(payload, "Gains");
      const auto& gains = payload["gain"];
      double resolution = std::accumulate(payload["resolution"].begin(), payload["resolution"].end(), 0.0) / channels;
      std::cout << m_name << ": gains of " << channels << " channels from " << pedestals.size() << " runs: "
                << *std::min_element(gains.begin(), gains.end()) << " .. "
                << *std::max_element(gains.begin(), gains.end()) << " ADC/keV" << std::endl;
      std::printf("%s: %zu gains, line resolution %.1f %%\n", m_name.c_str(), channels, 100 * resolution);
      return c_OK;
    }
  };

  /// Time offset = mean hit time after removing the walk of the calibrated amplitude.
  class TimeOffsetCalibration : public DemoAlgorithm {
  public:
    TimeOffsetCalibration() : DemoAlgorithm("TimeOffsetCalibration") {}
  protected:
    EResult runCalibration() override
    {
      std::map<ExpRun, std::vector<double>> pedestals, gains;
      bool havePedestals = payloadsPerRun("Pedestals", "pedestal", pedestals);
      if (!havePedestals || !payloadsPerRun("Gains", "gain", gains)) return c_Failure;
      size_t channels = pedestals.begin()->second.size();
      std::vector<std::vector<double>> times(channels);
      double walkSum = 0;
      size_t walks = 0;
      for (const auto& hit : readHits(*getObjectPtr(DemoDetector::kSignalHits))) {
        double energy = (hit.adc - pedestals[hit.run][hit.channel]) / gains[hit.run][hit.channel];
        if (energy < DemoDetector::kMinWalkEnergyKeV) continue;
        double walk = DemoDetector::kTimeWalkNsSqrtKeV / std::sqrt(std::max(energy, 1.0));
        walkSum += walk;
        ++walks;
        times[hit.channel].push_back(hit.time - walk);
      }
      std::cout << m_name << ": removed a time walk of " << walkSum / std::max<size_t>(walks, 1)
                << " ns on average (" << walks << " hits)" << std::endl;
      PayloadData payload;
      for (size_t ch = 0; ch < channels; ++ch) {
        if (!enoughHits(ch, times[ch].size(), "usable hits")) return c_NotEnoughData;
        Peak peak = truncatedMean(times[ch], median(times[ch]), 1.0);
        payload["t0"].push_back(peak.centre);
        payload["sigma"].push_back(peak.sigma);
      }
      saveCalibration(payload, "TimeOffsets");
      double spread = std::accumulate(payload["sigma"].begin(), payload["sigma"].end(), 0.0) / channels;
      std::printf("%s: %zu time offsets, mean resolution %.2f ns\n", m_name.c_str(), channels, spread);
      return c_OK;
    }
  };

}  // namespace CafHpcDemo
