// A C++ stand-in for basf2's Belle2::CalibrationAlgorithm (calibration/include/CalibrationAlgorithm.h),
// compiled at run time by ROOT's cling (caf_hpc.extras.standins.cpp loads it).
//
// It keeps the parts of the real interface that CAF's Python strategies and an algorithm's
// calibrate() use: input file names, the run list from the collected data, execute(runs,
// iteration, iov) returning CAF's result codes, getObjectPtr() over the collector output of
// the requested runs, saveCalibration() and commit() into a local database in basf2's
// database.txt format, and payload lookups through the conditions chain (as DBObjPtr does).
//
// Collector output follows the layout of CAF's CollectorOutput.root files: a directory per
// collector (the algorithm's prefix), in it a directory per collected object, in that one
// TTree per run named "<object>_<exp>.<run>".
// Payloads are ROOT files "dbstore_<Name>_rev_<revision>.root" beside database.txt, holding a
// one-entry TTree named after the payload whose branches are vectors of doubles.
#pragma once

#include <TChain.h>
#include <TDirectory.h>
#include <TFile.h>
#include <TKey.h>
#include <TTree.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace CafHpc {

  /// (experiment, run), as Belle2::Calibration::ExpRun.
  typedef std::pair<int, int> ExpRun;

  /// Payload contents: named columns of numbers (pedestal per channel, ...).
  typedef std::map<std::string, std::vector<double>> PayloadData;

  /// An interval of validity; -1 as the high end means open-ended, as in basf2.
  class IntervalOfValidity {
  public:
    IntervalOfValidity() {}
    IntervalOfValidity(int expLow, int runLow, int expHigh, int runHigh)
      : m_expLow(expLow), m_runLow(runLow), m_expHigh(expHigh), m_runHigh(runHigh) {}
    int getExperimentLow() const { return m_expLow; }
    int getRunLow() const { return m_runLow; }
    int getExperimentHigh() const { return m_expHigh; }
    int getRunHigh() const { return m_runHigh; }
    bool empty() const { return m_expLow < 0 && m_expHigh < 0; }
    bool contains(const ExpRun& er) const
    {
      if (std::make_pair(er.first, er.second) < std::make_pair(m_expLow, m_runLow)) return false;
      if (m_expHigh < 0) return true;
      if (m_runHigh < 0) return er.first <= m_expHigh;
      return std::make_pair(er.first, er.second) <= std::make_pair(m_expHigh, m_runHigh);
    }
    std::string str() const
    {
      std::ostringstream out;
      out << m_expLow << "," << m_runLow << "," << m_expHigh << "," << m_runHigh;
      return out.str();
    }
  private:
    int m_expLow = -1, m_runLow = -1, m_expHigh = -1, m_runHigh = -1;
  };

  /// The process-wide conditions configuration, as basf2's Conditions::Configuration:
  /// which local databases are searched (first one wins) and where payloads are saved.
  /// The Python stand-in ``caf_hpc.extras.standins.conditions`` keeps it in step.
  class Conditions {
  public:
    static Conditions& instance() { static Conditions conditions; return conditions; }
    void reset() { m_testingPayloads.clear(); m_savePayloads.clear(); }
    void prependTestingPayloads(const std::string& databaseTxt) { m_testingPayloads.insert(m_testingPayloads.begin(), databaseTxt); }
    void setSavePayloads(const std::string& databaseTxt) { m_savePayloads = databaseTxt; }
    const std::string& getSavePayloads() const { return m_savePayloads; }
    const std::vector<std::string>& getTestingPayloads() const { return m_testingPayloads; }

    static std::string payloadFile(const std::string& databaseTxt, const std::string& name, int revision)
    {
      std::string dir = databaseTxt.substr(0, databaseTxt.find_last_of('/') + 1);
      return dir + "dbstore_" + name + "_rev_" + std::to_string(revision) + ".root";
    }

    /// The newest revision of ``name`` valid for ``er`` in the first database that has one.
    bool getPayload(const std::string& name, const ExpRun& er, PayloadData& out) const
    {
      for (const auto& databaseTxt : m_testingPayloads) {
        std::ifstream in(databaseTxt);
        std::string line, store, iovText;
        int revision = 0, found = 0;
        while (std::getline(in, line)) {
          std::istringstream fields(line);
          if (!(fields >> store >> revision >> iovText) || store != "dbstore/" + name) continue;
          int el, rl, eh, rh;
          if (std::sscanf(iovText.c_str(), "%d,%d,%d,%d", &el, &rl, &eh, &rh) != 4) continue;
          if (IntervalOfValidity(el, rl, eh, rh).contains(er)) found = revision;  // later lines win
        }
        if (found && readPayload(payloadFile(databaseTxt, name, found), name, out)) return true;
      }
      return false;
    }

    /// Writes ``data`` as the next revision of ``name``, holding the database.txt lock as basf2 does.
    int save(const std::string& name, const PayloadData& data, const IntervalOfValidity& iov) const
    {
      if (m_savePayloads.empty()) {
        std::cerr << "CafHpc::Conditions: no output database set (conditions.expert_settings(save_payloads=...))" << std::endl;
        return 0;
      }
      int fd = ::open(m_savePayloads.c_str(), O_RDWR | O_CREAT | O_APPEND, 0644);
      if (fd < 0 || ::flock(fd, LOCK_EX) != 0) {
        std::cerr << "CafHpc::Conditions: cannot open and lock " << m_savePayloads << ": " << std::strerror(errno)
                  << "; payload " << name << " is not saved" << std::endl;
        if (fd >= 0) ::close(fd);
        return 0;
      }
      int revision = 1;
      {
        std::ifstream in(m_savePayloads);
        std::string line, store;
        int rev;
        while (std::getline(in, line)) {
          std::istringstream fields(line);
          if (fields >> store >> rev && store == "dbstore/" + name) revision = std::max(revision, rev + 1);
        }
      }
      bool written = writePayload(payloadFile(m_savePayloads, name, revision), name, data);
      if (written) {
        std::string entry = "dbstore/" + name + " " + std::to_string(revision) + " " + iov.str() + "\n";
        written = ::write(fd, entry.data(), entry.size()) == static_cast<ssize_t>(entry.size());
      }
      ::flock(fd, LOCK_UN);
      ::close(fd);
      return written ? revision : 0;
    }

  private:
    static bool writePayload(const std::string& path, const std::string& name, const PayloadData& data)
    {
      std::string tmp = path + ".tmp";
      {
        TDirectory::TContext keepDirectory;  // do not leave gDirectory on a closed file
        TFile file(tmp.c_str(), "RECREATE");
        if (file.IsZombie()) return false;
        TTree tree(name.c_str(), name.c_str());
        std::vector<std::vector<double>> columns;
        columns.reserve(data.size());
        for (const auto& item : data) columns.push_back(item.second);
        size_t i = 0;
        for (const auto& item : data) tree.Branch(item.first.c_str(), &columns[i++]);
        tree.Fill();
        tree.Write();
        file.Close();
      }
      return std::rename(tmp.c_str(), path.c_str()) == 0;
    }

    static bool readPayload(const std::string& path, const std::string& name, PayloadData& out)
    {
      TDirectory::TContext keepDirectory;
      std::unique_ptr<TFile> file(TFile::Open(path.c_str(), "READ"));
      if (!file || file->IsZombie()) return false;
      TTree* tree = file->Get<TTree>(name.c_str());
      if (!tree || tree->GetEntries() < 1) return false;
      out.clear();
      std::map<std::string, std::vector<double>*> columns;
      for (auto* branch : *tree->GetListOfBranches()) {
        std::string column = branch->GetName();
        columns[column] = nullptr;
        tree->SetBranchAddress(column.c_str(), &columns[column]);
      }
      tree->GetEntry(0);
      for (auto& item : columns) {
        if (item.second) out[item.first] = *item.second;
        delete item.second;
      }
      tree->ResetBranchAddresses();
      return true;
    }

    std::vector<std::string> m_testingPayloads;
    std::string m_savePayloads;
  };

  /// Base class of calibration algorithms, shaped like Belle2::CalibrationAlgorithm.
  class CalibrationAlgorithm {
  public:
    /// The result of an execution: 0..3 in Python, as CAF's AlgResult.
    enum EResult { c_OK, c_Iterate, c_NotEnoughData, c_Failure, c_Undefined };

    /// ``collectorModuleName`` names the directory of the collector output this algorithm reads.
    explicit CalibrationAlgorithm(const std::string& collectorModuleName) : m_prefix(collectorModuleName) {}
    virtual ~CalibrationAlgorithm() {}

    std::string getPrefix() const { return m_prefix; }
    void setPrefix(const std::string& prefix) { m_prefix = prefix; }
    std::string getCollectorName() const { return m_prefix; }
    const std::string& getDescription() const { return m_description; }

    void setInputFileNames(const std::vector<std::string>& inputFileNames) { m_inputFileNames = inputFileNames; }
    std::vector<std::string> getInputFileNames() const { return m_inputFileNames; }

    /// Every run found in the collector output of this algorithm's prefix, sorted.
    std::vector<ExpRun> getRunListFromAllData() const
    {
      std::set<ExpRun> runs;
      for (const auto& path : m_inputFileNames) {
        TDirectory::TContext keepDirectory;
        std::unique_ptr<TFile> file(TFile::Open(path.c_str(), "READ"));
        if (!file || file->IsZombie()) {
          std::cerr << "CalibrationAlgorithm: cannot open input file " << path << std::endl;
          continue;
        }
        auto* prefix = file->GetDirectory(m_prefix.c_str());
        if (!prefix) continue;
        for (auto* objectKey : *prefix->GetListOfKeys()) {
          auto* objectDir = prefix->GetDirectory(objectKey->GetName());
          if (!objectDir) continue;
          std::string object = objectKey->GetName();
          for (auto* runKey : *objectDir->GetListOfKeys()) {
            int exp, run;
            std::string name = runKey->GetName();
            if (std::sscanf(name.c_str() + std::min(name.size(), object.size() + 1), "%d.%d", &exp, &run) == 2)
              runs.insert(ExpRun(exp, run));
          }
        }
      }
      return std::vector<ExpRun>(runs.begin(), runs.end());
    }

    IntervalOfValidity getIovFromAllData() const { return iovFromRuns(getRunListFromAllData()); }

    /// Runs calibrate() over ``runs`` (all collected runs if empty); payloads are labelled with ``iov``,
    /// or with the IoV spanning the runs.
    EResult execute(std::vector<ExpRun> runs = {}, int iteration = 0, IntervalOfValidity iov = IntervalOfValidity())
    {
      m_runs = runs.empty() ? getRunListFromAllData() : runs;
      std::sort(m_runs.begin(), m_runs.end());
      m_iteration = iteration;
      m_iov = iov.empty() ? iovFromRuns(m_runs) : iov;
      m_pending.clear();
      m_result = m_runs.empty() ? c_NotEnoughData : calibrate();
      return m_result;
    }

    /// Writes the payloads of the last execution into the output database.
    bool commit()
    {
      bool ok = true;
      for (const auto& payload : m_pending)
        ok = Conditions::instance().save(payload.name, payload.data, payload.iov) > 0 && ok;
      m_pending.clear();
      return ok;
    }

  protected:
    /// Run the algorithm on the data of getRunList(); implemented by each algorithm.
    virtual EResult calibrate() = 0;

    const std::vector<ExpRun>& getRunList() const { return m_runs; }
    int getIteration() const { return m_iteration; }
    void setDescription(const std::string& description) { m_description = description; }

    /// The collected TTree ``name`` of the requested runs over all input files, merged as a TChain.
    std::shared_ptr<TChain> getObjectPtr(const std::string& name) const
    {
      auto chain = std::make_shared<TChain>(name.c_str());
      for (const auto& path : m_inputFileNames) {
        TDirectory::TContext keepDirectory;
        std::unique_ptr<TFile> file(TFile::Open(path.c_str(), "READ"));
        if (!file || file->IsZombie()) continue;
        for (const auto& er : m_runs) {
          std::string tree = m_prefix + "/" + name + "/" + name + "_" + std::to_string(er.first) + "." +
                             std::to_string(er.second);
          if (file->Get<TTree>(tree.c_str())) chain->Add((path + "/" + tree).c_str());
        }
      }
      return chain;
    }

    /// Keeps ``data`` as payload ``name`` for commit(), valid for the execution's IoV.
    void saveCalibration(const PayloadData& data, const std::string& name) { saveCalibration(data, name, m_iov); }
    void saveCalibration(const PayloadData& data, const std::string& name, const IntervalOfValidity& iov)
    {
      m_pending.push_back(Pending{name, data, iov});
    }

    /// Payload ``name`` valid for ``er`` from the conditions chain (an earlier algorithm's commit).
    bool getPayload(const std::string& name, const ExpRun& er, PayloadData& out) const
    {
      return Conditions::instance().getPayload(name, er, out);
    }

  private:
    struct Pending { std::string name; PayloadData data; IntervalOfValidity iov; };

    static IntervalOfValidity iovFromRuns(const std::vector<ExpRun>& runs)
    {
      if (runs.empty()) return IntervalOfValidity();
      auto range = std::minmax_element(runs.begin(), runs.end());
      return IntervalOfValidity(range.first->first, range.first->second, range.second->first, range.second->second);
    }

    // Settings travel with the object (ROOT streams them when it is pickled); the state of an
    // execution does not ("//!": transient, as in basf2), so a dictionary needs none for it.
    std::string m_prefix;
    std::string m_description;
    std::vector<std::string> m_inputFileNames;
    std::vector<ExpRun> m_runs;  //! the runs of the execution
    int m_iteration = -1;  //! its iteration
    IntervalOfValidity m_iov;  //! its IoV
    EResult m_result = c_Undefined;  //! its result
    std::vector<Pending> m_pending;  //! its payloads until commit()
  };

}  // namespace CafHpc
